"""DeepMind Control Suite tasks (state-based), as Gymnasium envs with dict observations.

The observation is the suite's observation dict flattened: every array, in sorted key order,
concatenated into one float32 vector `continuous_observations` (`TaskInfo.obs_components` records
the order and sizes). Episodes last 1000 agent steps (the suite's own time limit, reported as
truncation). Actions are float32 vectors in [-1, 1]; quadruped's actuators have uneven bounds,
so for those tasks [-1, 1] is rescaled linearly onto each actuator's real range.

Left out: `lqr.*` (unbounded actions, which Gato's [-1, 1] action bins cannot express, and no
time limit).
"""

from __future__ import annotations

import json
from importlib import resources

import gymnasium as gym
import numpy as np

from gato.envs.task import CONTINUOUS_OBS, TaskInfo
from gato.envs.wrappers import DictObservation
from gato.specs import ContinuousSpec

FAMILY = "dmc"
EPISODE_STEPS = 1000

# (observation components in sorted key order with their flat sizes, action size), as reported
# by dm_control 1.0.28 (gato/data/dmc_tasks.json); a slow test checks it against the suite.
_TASKS: dict[str, tuple[tuple[tuple[str, int], ...], int]] = {
    name: (tuple(entry["observation"].items()), entry["action_size"])
    for name, entry in json.loads(
        resources.files("gato").joinpath("data/dmc_tasks.json").read_text()
    ).items()
}


def task_names() -> list[str]:
    return sorted(_TASKS)


def task_info(name: str) -> TaskInfo:
    components, action_size = _TASKS[name]
    obs_size = sum(size for _, size in components)
    return TaskInfo(
        name=name,
        family=FAMILY,
        jat_name=None,  # the JAT dataset has no DM Control tasks
        obs_spec={CONTINUOUS_OBS: ContinuousSpec((obs_size,))},
        action_spec=ContinuousSpec((action_size,), -1.0, 1.0),
        max_episode_steps=EPISODE_STEPS,
        obs_components=components,
        env_id=name,
    )


def _patch_numpy_for_dm_control() -> None:
    # dm_control 1.0.28's quadruped calls np.in1d, which NumPy 2.4 removed; np.isin is the same
    # function under its current name.
    if not hasattr(np, "in1d"):
        np.in1d = np.isin


class DMControlEnv(gym.Env):
    """A dm_control suite environment with the Gymnasium API and a flat float32 observation.

    `reset(seed=s)` reseeds the task's random state, so the same seed gives the same initial
    state (shimmy's wrapper does not reseed the task, which is why this class exists).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 50}

    def __init__(
        self,
        domain: str,
        task: str,
        seed: int | None = None,
        render_mode: str | None = None,
        render_size: tuple[int, int] = (240, 320),
        camera_id: int = 0,
    ):
        _patch_numpy_for_dm_control()
        from dm_control import suite

        self.dm_env = suite.load(domain, task, task_kwargs={"random": seed})
        self.keys = sorted(self.dm_env.observation_spec())
        size = sum(int(np.prod(spec.shape)) for spec in self.dm_env.observation_spec().values())
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (size,), np.float32)
        spec = self.dm_env.action_spec()
        self.action_space = gym.spaces.Box(
            spec.minimum.astype(np.float32),
            spec.maximum.astype(np.float32),
            spec.shape,
            np.float32,
            seed=seed,
        )
        self.render_mode = render_mode
        self.render_size = render_size
        self.camera_id = camera_id
        self.metadata = {**self.metadata, "render_fps": round(1 / self.dm_env.control_timestep())}

    @property
    def physics(self):
        """The MuJoCo physics of the suite env (experts read the simulator state from it)."""
        return self.dm_env.physics

    def _flatten(self, observation) -> np.ndarray:
        parts = [np.asarray(observation[key], np.float32).reshape(-1) for key in self.keys]
        return np.concatenate(parts)

    def reset(self, *, seed: int | None = None, options=None):
        super().reset(seed=seed)
        if seed is not None:
            self.dm_env.task.random.seed(seed)
        timestep = self.dm_env.reset()
        return self._flatten(timestep.observation), {}

    def step(self, action):
        timestep = self.dm_env.step(np.asarray(action, np.float64))
        observation = self._flatten(timestep.observation)
        # dm_control suite episodes only end by the time limit, reported with discount 1;
        # a zero discount at the last step would mean a true terminal state.
        terminated = bool(timestep.last() and timestep.discount == 0)
        truncated = bool(timestep.last() and not terminated)
        return observation, float(timestep.reward or 0.0), terminated, truncated, {}

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        height, width = self.render_size
        return self.dm_env.physics.render(height=height, width=width, camera_id=self.camera_id)


# One Gymnasium id for every suite task (domain and task are keyword arguments), so that the
# env has a spec like the other families' envs and `env.spec.make()` rebuilds it, wrappers and all.
GYM_ID = "gato/DMControl-v0"


def make(
    info: TaskInfo, seed: int | None = None, render_mode: str | None = None, **kwargs
) -> gym.Env:
    if GYM_ID not in gym.registry:
        gym.register(GYM_ID, entry_point=f"{__name__}:DMControlEnv")
    domain, task = info.name.split(".", 1)
    env = gym.make(
        GYM_ID,
        domain=domain,
        task=task,
        seed=seed,
        render_mode=render_mode,
        disable_env_checker=True,  # checked in the tests (tests/test_env_checker.py) instead
        **kwargs,
    )
    low, high = env.action_space.low, env.action_space.high
    if not (np.all(low == -1.0) and np.all(high == 1.0)):
        # quadruped: uneven actuator bounds. float32 bounds, the action space's dtype, so that
        # the rescaled Box is not built by casting float64 bounds down (a Gymnasium warning).
        env = gym.wrappers.RescaleAction(env, np.float32(-1.0), np.float32(1.0))
    env = DictObservation(env, CONTINUOUS_OBS, np.float32)
    return env
