"""Where a training window falls in an episode (gato/data.py): pure functions of the episode's
token offsets and the row's random generator, so the sampler's choices stay reproducible.
"""

from __future__ import annotations

import numpy as np


def token_window(rng: np.random.Generator, total: int, size: int) -> tuple[int, int]:
    """A uniformly placed window of `size` tokens in `total` (all of it if it is shorter)."""
    if total <= size:
        return 0, total
    return int(rng.integers(total - size + 1)), size


def steps_window(
    rng: np.random.Generator, offsets: np.ndarray, steps: int, room: int
) -> tuple[int, int]:
    """`steps` whole timesteps from a uniformly drawn timestep start (every start from which
    they fit; the whole episode if it is shorter), cut to `room` tokens."""
    first = int(rng.integers(max(len(offsets) - 1 - steps, 0) + 1))
    start = int(offsets[first])
    stop = int(offsets[min(first + steps, len(offsets) - 1)])
    return start, min(stop - start, room)


def prompt_span(
    rng: np.random.Generator, offsets: np.ndarray, budget: int, kind: str
) -> tuple[int, int]:
    """[start, stop) of a prompt of whole timesteps within `budget` tokens (module docstring)."""
    total = int(offsets[-1])
    if total <= budget:
        return 0, total
    starts = offsets[:-1]
    if kind == "end":
        start = int(offsets[np.searchsorted(offsets, total - budget, side="left")])
        return (start if start < total else total - budget), total
    # Timestep starts from which the whole budget fits; starts[0] = 0 always qualifies.
    start = int(starts[rng.integers(np.searchsorted(starts, total - budget, side="right"))])
    stop = int(offsets[np.searchsorted(offsets, start + budget, side="right") - 1])
    return start, (stop if stop > start else start + budget)
