"""Expert policies that generate Gato's training data, and the random policy that defines 0%.

    >>> from gato.envs import make_env
    >>> from gato.experts import make_expert
    >>> env = make_env("cartpole.swingup")
    >>> observation, _ = env.reset(seed=0)
    >>> expert = make_expert("cartpole.swingup", env)
    >>> expert.reset(env, observation)
    >>> action = expert.act(observation)

Experts may read the env's internals (Atari RAM, simulator state, the BabyAI bot's map), which a
learned policy cannot: they exist to produce demonstrations. Which tasks have experts, and how
good they are, is measured by `python -m gato.experts.measure` (experiments/results/experts.md).
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol

import gymnasium as gym
import numpy as np

from gato.envs import get_task
from gato.specs import DiscreteSpec

__all__ = [
    "Expert",
    "RandomPolicy",
    "expert_tasks",
    "has_expert",
    "make_expert",
    "make_random_policy",
]

# family -> module with `has_expert(name) -> bool` and `make_expert(name, env, **kwargs)`.
_FAMILY_MODULES = {
    "babyai": "gato.experts.babyai",
    "metaworld": "gato.experts.metaworld",
    "dmc": "gato.experts.cartpole",
    "atari": "gato.experts.atari",
    "mujoco": "gato.experts.sac",
}


class Expert(Protocol):
    """A policy that acts from dict observations (and possibly the env's internals)."""

    def reset(self, env: gym.Env, observation: dict) -> None:
        """Called after every `env.reset`, with the first observation of the episode."""

    def act(self, observation: dict) -> Any:
        """The action for this observation: a float32 array (continuous) or an int (discrete)."""


def _module(family: str):
    return importlib.import_module(_FAMILY_MODULES[family])


def has_expert(task: str) -> bool:
    """Whether `make_expert` can build an expert for this task (for MuJoCo: a trained file
    exists at the default path)."""
    info = get_task(task)
    return info.family in _FAMILY_MODULES and _module(info.family).has_expert(info.name)


def expert_tasks(family: str | None = None) -> list[str]:
    """Tasks that have an expert."""
    from gato.envs import list_tasks

    return [name for name in list_tasks(family) if has_expert(name)]


def make_expert(task: str, env: gym.Env, **kwargs) -> Expert:
    """The expert for `task` acting in `env` (built by `gato.envs.make_env(task)`)."""
    info = get_task(task)
    if not has_expert(info.name):
        raise ValueError(
            f"task {info.name!r} has no expert; tasks with one: "
            f"`python -m gato.experts.measure --list`"
        )
    return _module(info.family).make_expert(info.name, env, **kwargs)


class RandomPolicy:
    """Uniformly random actions over the task's action space: the 0% of normalized scores."""

    def __init__(self, task: str, seed: int):
        self.spec = get_task(task).action_spec
        self.rng = np.random.default_rng(seed)

    def reset(self, env: gym.Env, observation: dict) -> None:
        pass

    def act(self, observation: dict):
        if isinstance(self.spec, DiscreteSpec):
            return int(self.rng.integers(self.spec.n))
        return self.rng.uniform(self.spec.low, self.spec.high, self.spec.shape).astype(np.float32)


def make_random_policy(task: str, env: gym.Env | None, seed: int) -> RandomPolicy:
    """A uniformly random policy for `task` (the env is not needed; accepted for symmetry)."""
    return RandomPolicy(task, seed)
