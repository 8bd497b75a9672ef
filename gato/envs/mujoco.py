"""Gymnasium MuJoCo v5 locomotion and control tasks, as envs with dict observations.

Observation: `continuous_observations`, the env's float vector as float32. Actions are float32
vectors within the env's own bounds (e.g. Humanoid [-0.4, 0.4], Pusher [-2, 2]); the action spec
carries those bounds so the tokenizer rescales them to [-1, 1]. Episodes follow the v5 defaults
(1000 steps; Reacher 50, Pusher 100) and locomotion tasks terminate early when the body falls.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from gato.envs.task import CONTINUOUS_OBS, TaskInfo
from gato.envs.wrappers import DictObservation
from gato.specs import ContinuousSpec

FAMILY = "mujoco"


# name -> (Gymnasium id, JAT config, observation size, action size, action bound, episode steps),
# as reported by Gymnasium 1.x; a test checks the table against the envs.
_TASKS = {
    "halfcheetah": ("HalfCheetah-v5", "mujoco-halfcheetah", 17, 6, 1.0, 1000),
    "hopper": ("Hopper-v5", "mujoco-hopper", 11, 3, 1.0, 1000),
    "walker2d": ("Walker2d-v5", "mujoco-walker", 17, 6, 1.0, 1000),
    "ant": ("Ant-v5", "mujoco-ant", 105, 8, 1.0, 1000),
    "humanoid": ("Humanoid-v5", "mujoco-humanoid", 348, 17, 0.4, 1000),
    "humanoidstandup": ("HumanoidStandup-v5", "mujoco-standup", 348, 17, 0.4, 1000),
    "invertedpendulum": ("InvertedPendulum-v5", "mujoco-pendulum", 4, 1, 3.0, 1000),
    "inverteddoublependulum": (
        "InvertedDoublePendulum-v5",
        "mujoco-doublependulum",
        9,
        1,
        1.0,
        1000,
    ),
    "reacher": ("Reacher-v5", "mujoco-reacher", 10, 2, 1.0, 50),
    "pusher": ("Pusher-v5", "mujoco-pusher", 23, 7, 2.0, 100),
    "swimmer": ("Swimmer-v5", "mujoco-swimmer", 8, 2, 1.0, 1000),
}


def task_names() -> list[str]:
    return sorted(f"{FAMILY}.{short}" for short in _TASKS)


def task_info(name: str) -> TaskInfo:
    env_id, jat_name, obs_size, action_size, bound, steps = _TASKS[name.split(".", 1)[1]]
    return TaskInfo(
        name=name,
        family=FAMILY,
        jat_name=jat_name,
        obs_spec={CONTINUOUS_OBS: ContinuousSpec((obs_size,))},
        action_spec=ContinuousSpec((action_size,), -bound, bound),
        max_episode_steps=steps,
        env_id=env_id,
    )


def make(
    info: TaskInfo, seed: int | None = None, render_mode: str | None = None, **kwargs
) -> gym.Env:
    env = gym.make(info.env_id, render_mode=render_mode, disable_env_checker=True, **kwargs)
    env = DictObservation(env, CONTINUOUS_OBS, np.float32)
    if seed is not None:
        env.action_space.seed(seed)
    return env
