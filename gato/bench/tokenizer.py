"""Tokenizer throughput on one core: continuous values, image frames, episode tokens.

The targets are what keeps tokenization from ever starving an accelerator (issue 2)."""

from __future__ import annotations

import time

import numpy as np

from gato.serialize import tokenize_episode
from gato.specs import ContinuousSpec
from gato.tokenizer import image_to_patches, tokenize_continuous


def _best_rate(fn, units: float, repeats: int) -> float:
    """Units per second of the fastest of `repeats` timed calls (after one warm-up call)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return units / best


def run(quick: bool = False) -> list[dict]:
    rng = np.random.default_rng(0)
    repeats = 2 if quick else 7
    values = rng.normal(scale=5.0, size=1_000_000 if quick else 10_000_000).astype(np.float32)
    frames = rng.integers(0, 256, (200 if quick else 2000, 80, 80, 3), dtype=np.uint8)
    steps = 500  # a Meta-World-sized episode: 39-d observations, 4-d actions
    obs = {"continuous_observations": rng.normal(size=(steps, 39)).astype(np.float32)}
    actions = rng.uniform(-1, 1, (steps, 4)).astype(np.float32)
    obs_spec = {"continuous_observations": ContinuousSpec((39,))}
    action_spec = ContinuousSpec((4,))
    episode_tokens = len(tokenize_episode(obs, actions, obs_spec, action_spec))
    episodes = 10 if quick else 100

    def serialize():
        for _ in range(episodes):
            tokenize_episode(obs, actions, obs_spec, action_spec)

    measured = [
        (
            "continuous values tokenized (mu-law)",
            "values/s",
            _best_rate(lambda: tokenize_continuous(values, mu_law=True), values.size, repeats),
            50e6,
        ),
        (
            "80x80 RGB frames patched",
            "frames/s",
            _best_rate(lambda: image_to_patches(frames), len(frames), repeats),
            5e3,
        ),
        (
            "episode tokens serialized (39-d obs, 4-d act)",
            "tokens/s",
            _best_rate(serialize, episodes * episode_tokens, repeats),
            1e6,
        ),
    ]
    return [
        {
            "benchmark": name,
            "unit": unit,
            "rate": float(rate),
            "target": target,
            "meets target": bool(rate >= target),
        }
        for name, unit, rate, target in measured
    ]
