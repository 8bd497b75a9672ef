"""Gymnasium MuJoCo locomotion and control tasks, as envs with dict observations.

Two sets of the same 11 robots:
- `mujoco.<robot>` (e.g. `mujoco.ant`): the env JAT recorded its `mujoco-*` configs in, Gymnasium's
  v4 (jat/eval/rl/core.py maps `mujoco-ant` to `Ant-v4`), so hub data has this env's layout. v4
  differs from v5 in observations: Ant excludes contact forces by default (27 values, v5 105),
  Humanoid and HumanoidStandup keep the worldbody's inertia and velocity terms (376, v5 348),
  InvertedDoublePendulum has 11 (v5 9: no constraint forces), Reacher 11 (v5 10: no z of the
  fingertip-target vector); and in rewards and terminations (v5 changelog). One exception:
  `Pusher-v4` refuses to run on mujoco 3 (its model behaves differently there, Gymnasium issue
  950), so `mujoco.pusher` is `Pusher-v5`, whose layout is v4's (23 observations, 7 actions).
- `mujoco.<robot>-v5`: Gymnasium's current v5 envs, under their own names.

Observation: `continuous_observations`, the env's float vector as float32. Actions are float32
vectors within the env's own bounds (e.g. Humanoid [-0.4, 0.4], Pusher [-2, 2]); the action spec
carries those bounds so the tokenizer rescales them to [-1, 1]. Episodes follow the envs'
defaults (1000 steps; Reacher 50, Pusher 100); locomotion tasks terminate when the body falls.
"""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np

from gato.envs.task import CONTINUOUS_OBS, TaskInfo
from gato.envs.wrappers import DictObservation
from gato.specs import ContinuousSpec

FAMILY = "mujoco"
V5_SUFFIX = "-v5"

# robot -> (JAT config, Gymnasium robot name, JAT-layout obs size, v5 obs size, action size,
# action bound, episode steps), as reported by Gymnasium 1.4 on mujoco 3.3; a test checks the
# table against the envs.
_ROBOTS = {
    "halfcheetah": ("mujoco-halfcheetah", "HalfCheetah", 17, 17, 6, 1.0, 1000),
    "hopper": ("mujoco-hopper", "Hopper", 11, 11, 3, 1.0, 1000),
    "walker2d": ("mujoco-walker", "Walker2d", 17, 17, 6, 1.0, 1000),
    "ant": ("mujoco-ant", "Ant", 27, 105, 8, 1.0, 1000),
    "humanoid": ("mujoco-humanoid", "Humanoid", 376, 348, 17, 0.4, 1000),
    "humanoidstandup": ("mujoco-standup", "HumanoidStandup", 376, 348, 17, 0.4, 1000),
    "invertedpendulum": ("mujoco-pendulum", "InvertedPendulum", 4, 4, 1, 3.0, 1000),
    "inverteddoublependulum": (
        "mujoco-doublependulum",
        "InvertedDoublePendulum",
        11,
        9,
        1,
        1.0,
        1000,
    ),
    "reacher": ("mujoco-reacher", "Reacher", 11, 10, 2, 1.0, 50),
    "pusher": ("mujoco-pusher", "Pusher", 23, 23, 7, 2.0, 100),
    "swimmer": ("mujoco-swimmer", "Swimmer", 8, 8, 2, 1.0, 1000),
}
# Robots whose JAT version (v4) cannot be built here, with the env used instead and why.
V4_REPLACED = {
    "pusher": ("Pusher-v5", "Pusher-v4 needs mujoco<3 (Gymnasium issue 950); v5 has its layout")
}


def jat_env_id(robot: str) -> str:
    """The Gymnasium id JAT recorded `robot` in (always v4)."""
    return f"{_ROBOTS[robot][1]}-v4"


def task_names() -> list[str]:
    return sorted(
        [f"{FAMILY}.{robot}" for robot in _ROBOTS] + [f"{FAMILY}.{r}-v5" for r in _ROBOTS]
    )


def task_info(name: str) -> TaskInfo:
    short = name.split(".", 1)[1]
    v5 = short.endswith(V5_SUFFIX)
    robot = short.removesuffix(V5_SUFFIX)
    jat_name, gym_name, v4_obs, v5_obs, action_size, bound, steps = _ROBOTS[robot]
    if v5:
        env_id, obs_size = f"{gym_name}-v5", v5_obs
    else:
        env_id, obs_size = V4_REPLACED.get(robot, (jat_env_id(robot),))[0], v4_obs
    return TaskInfo(
        name=name,
        family=FAMILY,
        jat_name=None if v5 else jat_name,  # the hub's data has the v4 layout
        obs_spec={CONTINUOUS_OBS: ContinuousSpec((obs_size,))},
        action_spec=ContinuousSpec((action_size,), -bound, bound),
        max_episode_steps=steps,
        env_id=env_id,
    )


def make(
    info: TaskInfo, seed: int | None = None, render_mode: str | None = None, **kwargs
) -> gym.Env:
    with warnings.catch_warnings():
        # v4 is chosen on purpose (JAT's layout); Gymnasium's "out of date, consider v5" is noise.
        warnings.filterwarnings("ignore", message=".*is out of date", category=DeprecationWarning)
        env = gym.make(info.env_id, render_mode=render_mode, disable_env_checker=True, **kwargs)
    env = DictObservation(env, CONTINUOUS_OBS, np.float32)
    if seed is not None:
        env.action_space.seed(seed)
    return env
