"""Noise-injected expert collection (DART, Laskey et al. 2017; GATO_SPEC.md section 9).

A deterministic expert visits a narrow set of states, and a policy cloned from it is lost at its
first mistake. :class:`NoisyExpert` executes a perturbed action while recording the expert's own
action for every state reached, so the data holds the expert's corrections from nearby states:

- continuous actions (``sigma > 0``): the executed action is
  ``clip(a + N(0, sigma^2) per dimension, low, high)``, with ``a`` the expert's action and
  ``low``/``high`` the task's action bounds (the clip is part of the definition: the executed
  action is always a valid one);
- discrete actions (``epsilon > 0``): with probability ``epsilon`` the executed action is
  uniformly random over the action space (each dimension uniform in ``[0, n)``; it may equal the
  expert's), otherwise the expert's.

``act(obs)`` returns the executed action; ``recorded_action`` holds the expert's action for the
same observation (what gato.rollout stores, see ``PerEnvActor.recorded_actions``). An expert that
keeps a plan across steps (the BabyAI bot) is told what really ran through its optional
``executed(action)`` method. The noise RNG is seeded by the episode's seed only, so an episode
is a pure function of (task, seed, sigma, epsilon).

    >>> from gato.experts import make_expert
    >>> from gato.envs import make_env, get_task
    >>> env = make_env("cartpole.balance")
    >>> noisy = NoisyExpert(make_expert("cartpole.balance", env), get_task("cartpole.balance")
    ...                     .action_spec, seed=3, sigma=0.1)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gato.specs import ContinuousSpec, DiscreteSpec

__all__ = ["NOISE_STREAM", "NoisyExpert", "check_noise", "noise_config"]

# Mixed with the episode seed: the noise stream is not the random policy's (default_rng(seed)).
NOISE_STREAM = 0x0DA27


def check_noise(sigma: float, epsilon: float) -> None:
    """Raise ValueError unless sigma is a finite number >= 0 and epsilon is in [0, 1]."""
    if not (math.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"the noise sigma must be a finite number >= 0, got {sigma}")
    if not (math.isfinite(epsilon) and 0 <= epsilon <= 1):
        raise ValueError(f"epsilon must be a probability in [0, 1], got {epsilon}")


class NoisyExpert:
    """Executes the expert's action perturbed (see the module), records the expert's."""

    def __init__(
        self, expert, action_spec, seed: int, sigma: float = 0.0, epsilon: float = 0.0
    ) -> None:
        check_noise(sigma, epsilon)
        if isinstance(action_spec, ContinuousSpec) and epsilon:
            raise ValueError("epsilon (random discrete actions) needs a discrete action space")
        if isinstance(action_spec, DiscreteSpec) and sigma:
            raise ValueError("sigma (Gaussian action noise) needs a continuous action space")
        self.expert, self.spec = expert, action_spec
        self.sigma, self.epsilon = float(sigma), float(epsilon)
        self.rng = np.random.default_rng([NOISE_STREAM, int(seed)])
        self.recorded_action: Any = None

    def reset(self, env, observation) -> None:
        self.expert.reset(env, observation)
        self.recorded_action = None

    def act(self, observation):
        action = self.expert.act(observation)
        self.recorded_action = action
        executed = self._perturb(action)
        if hasattr(self.expert, "executed"):
            self.expert.executed(executed)
        return executed

    def _perturb(self, action):
        spec = self.spec
        if isinstance(spec, ContinuousSpec):
            a = np.asarray(action, np.float64)
            noisy = a + self.rng.normal(0.0, self.sigma, a.shape)
            low = np.broadcast_to(np.asarray(spec.low, np.float64), a.shape)
            high = np.broadcast_to(np.asarray(spec.high, np.float64), a.shape)
            return np.clip(noisy, low, high).astype(np.float32)
        # Both draws happen every step, so the stream's position does not depend on the outcome.
        explore = self.rng.random() < self.epsilon
        random_action = self.rng.integers(spec.n, size=spec.shape)
        if not explore:
            return action
        return int(random_action) if spec.shape == () else random_action.astype(np.int64)


def noise_config(task_info, policy: str, sigma: float, epsilon: float) -> dict:
    """The noise entries of a task's metadata: the level of the noise its action kind takes
    (0.0 when off), None for the other; ValueError for noise the task or policy cannot take."""
    check_noise(sigma, epsilon)
    discrete = isinstance(task_info.action_spec, DiscreteSpec)
    if policy != "expert" and (sigma or epsilon):
        raise ValueError(f"noise perturbs the expert's actions, not the {policy} policy's")
    if sigma and discrete:
        raise ValueError(
            f"--noise (Gaussian action noise) needs continuous actions; {task_info.name} has "
            "discrete actions (use --epsilon)"
        )
    if epsilon and not discrete:
        raise ValueError(
            f"--epsilon (random discrete actions) needs discrete actions; {task_info.name} has "
            "continuous actions (use --noise)"
        )
    return {
        "noise_sigma": None if discrete else float(sigma),
        "noise_epsilon": float(epsilon) if discrete else None,
    }
