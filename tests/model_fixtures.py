"""Real tokenized episodes and a small model for the model, cache and benchmark tests."""

from __future__ import annotations

import numpy as np
import torch

from gato.config import get_config
from gato.model import Gato
from gato.serialize import tokenize_episode
from gato.specs import ContinuousSpec, DiscreteSpec, ImageSpec, TextSpec


class FakeText:
    """Stands in for SentencePiece (trained elsewhere): one id per character."""

    def encode(self, text: str) -> np.ndarray:
        return np.array([ord(c) % 97 + 3 for c in text], np.int64)


OBS_SPEC = {
    "image": ImageSpec(32, 32, 3),
    "state": ContinuousSpec((3,)),
    "grid": DiscreteSpec((2,), 10),
    "mission": TextSpec(),
}


def episode(seed: int, steps: int = 6, discrete_actions: bool = False):
    """A TokenSequence of `steps` timesteps of 20 tokens (odd seeds) or 16 (even seeds): the
    mission text, 4 image patches, 2 discrete and 3 continuous values, '|' and 2 actions."""
    rng = np.random.default_rng(seed)
    obs = {
        "image": rng.integers(0, 256, (steps, 32, 32, 3), dtype=np.uint8),
        "state": rng.normal(size=(steps, 3)),
        "grid": rng.integers(0, 10, (steps, 2)),
        "mission": ["red ball" if seed % 2 else "door"] * steps,
    }
    if discrete_actions:
        spec, actions = DiscreteSpec((2,), 7), rng.integers(0, 7, (steps, 2))
    else:
        spec, actions = ContinuousSpec((2,)), rng.uniform(-1, 1, (steps, 2))
    return tokenize_episode(obs, actions, OBS_SPEC, spec, text_tokenizer=FakeText())


def debug_model(seed: int = 0, **overrides) -> Gato:
    """The `debug` size in eval mode, deterministically initialised."""
    torch.manual_seed(seed)
    return Gato(get_config("debug", **overrides)).eval()
