"""Meta-World v3 tasks (all 50 of MT50), as Gymnasium envs with dict observations.

Built with `gym.make("Meta-World/MT1", env_name=...)`: every reset picks one of the task's 50
goal/object configurations. The 50 configurations are drawn once from the fixed `TASK_SET_SEED`,
whatever seed the env is made with, and `reset(seed=s)` picks among them from `s` alone, so an
episode depends only on its reset seed (not on which env, process or earlier episodes ran it).
Observations are 39 floats (hand, gripper, object poses, the previous step's 18 values, goal);
actions 4 floats in [-1, 1]. Episodes are truncated at 500 steps (the tasks' max_path_length);
`info['success']` reports success (episodes do not end on success).

Meta-World 3.x only has v3 tasks; JAT recorded v2, so returns are not comparable to JAT's.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium.utils import RecordConstructorArgs

from gato.envs.task import CONTINUOUS_OBS, TaskInfo
from gato.envs.wrappers import DictObservation
from gato.specs import ContinuousSpec

FAMILY = "metaworld"
EPISODE_STEPS = 500
OBS_SIZE = 39
ACTION_SIZE = 4
# Meta-World's MT1 draws the task's 50 goal/object configurations from the seed the env is built
# with (`MT1(env_name, seed)`, or NumPy's global generator without one). Built from the caller's
# seed, two envs of one task would hold different configuration lists, and the same reset seed
# would give different episodes in different worker processes (the reason `gato.collect
# --workers 1` and `--workers 2` once disagreed). One fixed seed makes the list a constant of the
# task, as Meta-World's benchmarks intend.
TASK_SET_SEED = 0


def _env_names() -> list[str]:
    import metaworld

    return sorted(metaworld.ALL_V3_ENVIRONMENTS)


def task_names() -> list[str]:
    return [f"{FAMILY}.{env_name.removesuffix('-v3')}" for env_name in _env_names()]


def task_info(name: str) -> TaskInfo:
    short = name.split(".", 1)[1]
    return TaskInfo(
        name=name,
        family=FAMILY,
        jat_name=f"metaworld-{short}",  # JAT has all 50 (recorded on v2)
        obs_spec={CONTINUOUS_OBS: ContinuousSpec((OBS_SIZE,))},
        action_spec=ContinuousSpec((ACTION_SIZE,), -1.0, 1.0),
        max_episode_steps=EPISODE_STEPS,
        env_id=f"{short}-v3",
    )


class SeededTaskReset(gym.Wrapper, RecordConstructorArgs):
    """Makes `reset(seed=s)` a function of `s` alone.

    Meta-World ignores the seed given to reset, and its task-sampling wrapper draws the task from
    the env's generator before the seed would reach it; seeding the base env first fixes both.
    Nothing else survives a reset: the chosen configuration fixes the goal and object positions
    (`set_task` freezes them), and the simulator is reset by `mj_resetData` (warm-start included).
    """

    def __init__(self, env: gym.Env):
        RecordConstructorArgs.__init__(self)  # so that env.spec.make() re-applies it
        gym.Wrapper.__init__(self, env)

    def reset(self, *, seed: int | None = None, options=None):
        if seed is not None:
            self.env.unwrapped.seed(seed)
        return self.env.reset(options=options)


def make(
    info: TaskInfo, seed: int | None = None, render_mode: str | None = None, **kwargs
) -> gym.Env:
    import metaworld  # noqa: F401  (registers the Meta-World/* envs)

    env = gym.make(
        "Meta-World/MT1",
        env_name=info.env_id,
        seed=TASK_SET_SEED,  # the task's configuration list; never the caller's seed (see above)
        # MT1 puts its own TimeLimit inside the env it returns, which makes `env.spec` report
        # max_episode_steps=500, so `env.spec.make()` adds a second, outer TimeLimit. Asking for
        # that outer one here as well keeps the built and the rebuilt wrapper stacks identical
        # (both limits are 500 steps, so episodes are unchanged).
        max_episode_steps=EPISODE_STEPS,
        render_mode=render_mode,
        disable_env_checker=True,
        **kwargs,
    )
    env = SeededTaskReset(env)
    env = DictObservation(env, CONTINUOUS_OBS, np.float32)
    if seed is not None:
        env.action_space.seed(seed)
    return env
