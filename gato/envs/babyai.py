"""BabyAI levels (minigrid 3.2), as Gymnasium envs with dict observations, JAT's layout.

Observation: `discrete_observations` = the agent's direction (0-3) followed by its 7x7x3 egocentric
view (object, colour, state indices) flattened row-major: 148 int64 values, each below 11;
`text_observations` = the mission string. Actions: 7 discrete (left, right, forward, pickup,
drop, toggle, done). The reward is 1 - 0.9 * steps / limit on success, else 0, and an episode
terminates on success. Each level sets its step limit per episode from the instruction
(navigations needed x room area x rooms); `TaskInfo.max_episode_steps` is an upper bound
(4 navigations); read `env.unwrapped.max_steps` after reset for the episode's own limit.

Names: 'BabyAI-GoToRedBall-v0' -> 'babyai.go-to-red-ball' (digits stay with their letter:
'BabyAI-MoveTwoAcrossS8N9-v0' -> 'babyai.move-two-across-s8n9'), as in JAT's config names.
"""

from __future__ import annotations

import contextlib
import io
import re
import string

import gymnasium as gym
import numpy as np
from gymnasium.utils import RecordConstructorArgs

from gato.envs.task import DISCRETE_OBS, TEXT_OBS, TaskInfo
from gato.envs.wrappers import IntAction
from gato.specs import DiscreteSpec, TextSpec

FAMILY = "babyai"
VIEW_SIZE = 7
OBS_SIZE = 1 + VIEW_SIZE * VIEW_SIZE * 3  # direction + view
OBS_VALUES = 11  # object indices go up to 10 ('agent'); colours to 5, states to 2, direction to 3
NUM_ACTIONS = 7
# Instructions need at most 4 navigations ('seq' of two 'and's, each of two), which bounds the
# per-episode limit num_navs * room_size**2 * rooms of levels without a fixed limit.
MAX_NAVIGATIONS = 4
# Missions are minigrid's instruction grammar (babyai/core/verifier.py `surface`): lower-case
# words (colours, object types, locations, verbs) joined by spaces, and ', then' between
# sequenced instructions. Gymnasium's default Text charset is alphanumeric only, so without a
# space and a comma no mission would be inside the observation space. The longest mission seen
# over every level is 166 characters; 1024 leaves room.
MISSION_CHARSET = string.ascii_lowercase + " ,"
MISSION_MAX_LENGTH = 1024

# JAT names one level differently from the rule above.
_JAT_EXCEPTIONS = {"put-next-s7n4": "babyai-put-next"}
_JAT_LEVELS = set(
    "action-obj-door blocked-unlock-pickup boss-level-no-unlock boss-level find-obj-s5 go-to-door "
    "go-to-imp-unlock go-to-local go-to-obj-door go-to-obj go-to-red-ball-grey "
    "go-to-red-ball-no-dists go-to-red-ball go-to-red-blue-ball go-to-seq go-to key-corridor "
    "mini-boss-level move-two-across-s8n9 one-room-s8 open-door open-doors-order-n4 open-red-door "
    "open-two-doors open pickup-above pickup-dist pickup-loc pickup put-next-local synth-loc "
    "synth-seq synth unblock-pickup unlock-local unlock-pickup unlock-to-unlock unlock".split()
)


def level_name(env_id: str) -> str:
    """'BabyAI-GoToRedBall-v0' -> 'go-to-red-ball'."""
    camel = env_id.removeprefix("BabyAI-").rsplit("-v", 1)[0]
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z][a-z])|(?<=[a-z])(?=[A-Z])", "-", camel).lower()


def _env_ids() -> dict[str, str]:
    import minigrid  # noqa: F401  (registers the BabyAI-* envs)

    ids = [env_id for env_id in gym.registry if env_id.startswith("BabyAI-")]
    return {f"{FAMILY}.{level_name(env_id)}": env_id for env_id in ids}


def task_names() -> list[str]:
    return sorted(_env_ids())


def _jat_name(level: str) -> str | None:
    if level in _JAT_EXCEPTIONS:
        return _JAT_EXCEPTIONS[level]
    return f"babyai-{level}" if level in _JAT_LEVELS else None


def _step_limit_bound(env_id: str) -> int:
    level = gym.make(env_id, disable_env_checker=True).unwrapped
    if level.fixed_max_steps:
        return int(level.max_steps)
    return MAX_NAVIGATIONS * level.room_size**2 * level.num_rows * level.num_cols


def task_info(name: str) -> TaskInfo:
    env_id = _env_ids()[name]
    return TaskInfo(
        name=name,
        family=FAMILY,
        jat_name=_jat_name(name.split(".", 1)[1]),
        obs_spec={DISCRETE_OBS: DiscreteSpec((OBS_SIZE,), OBS_VALUES), TEXT_OBS: TextSpec()},
        action_spec=DiscreteSpec((), NUM_ACTIONS),
        max_episode_steps=_step_limit_bound(env_id),
        env_id=env_id,
    )


class BabyAIObservation(gym.ObservationWrapper, RecordConstructorArgs):
    """minigrid's {'image', 'direction', 'mission'} -> JAT's discrete vector and mission text."""

    def __init__(self, env: gym.Env):
        RecordConstructorArgs.__init__(self)  # so that env.spec.make() re-applies it
        gym.ObservationWrapper.__init__(self, env)
        self.observation_space = gym.spaces.Dict(
            {
                DISCRETE_OBS: gym.spaces.Box(0, OBS_VALUES - 1, (OBS_SIZE,), np.int64),
                TEXT_OBS: gym.spaces.Text(MISSION_MAX_LENGTH, charset=MISSION_CHARSET),
            }
        )

    def reset(self, **kwargs):
        # minigrid's level generator prints a line for every layout it rejects and redraws
        # ("Sampling rejected: unreachable object at ..."): thousands in a collection's log. The
        # retries are part of the level's own sampling, so they are kept out of stdout.
        with contextlib.redirect_stdout(io.StringIO()):
            return super().reset(**kwargs)

    def observation(self, observation):
        direction = np.array([observation["direction"]], np.int64)
        view = np.asarray(observation["image"], np.int64).reshape(-1)
        return {DISCRETE_OBS: np.concatenate([direction, view]), TEXT_OBS: observation["mission"]}


def make(
    info: TaskInfo, seed: int | None = None, render_mode: str | None = None, **kwargs
) -> gym.Env:
    import minigrid  # noqa: F401

    env = gym.make(info.env_id, render_mode=render_mode, disable_env_checker=True, **kwargs)
    env = BabyAIObservation(env)
    env = IntAction(env)
    if seed is not None:
        env.action_space.seed(seed)
    return env
