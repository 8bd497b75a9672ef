"""Declared shapes of observations and actions.

An observation spec is a (possibly nested) mapping from names to leaf specs; the tokenizer uses it
to order, validate and tokenize observations, and the policy uses the action spec to restrict each
sampled action token to the tokens valid for its dimension. Specs round-trip through plain JSON
(`spec_to_dict` / `spec_from_dict`) so datasets and prompt files can record them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Union

import numpy as np

from gato.tokenizer import NUM_BINS, PATCH_SIZE


@dataclass(frozen=True)
class ContinuousSpec:
    """Float values of a fixed shape; `low`/`high` bound actions (rescaled to [-1, 1])."""

    shape: tuple[int, ...]
    low: float | tuple[float, ...] = -1.0
    high: float | tuple[float, ...] = 1.0

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


@dataclass(frozen=True)
class DiscreteSpec:
    """Integers in [0, n) of a fixed shape (n <= 1024): buttons, grid cells, directions."""

    shape: tuple[int, ...]
    n: int

    def __post_init__(self):
        if not 0 < self.n <= NUM_BINS:
            raise ValueError(f"discrete size n must be in [1, {NUM_BINS}], got {self.n}")

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


@dataclass(frozen=True)
class ImageSpec:
    """A uint8 image (height, width, channels); height and width are multiples of 16."""

    height: int
    width: int
    channels: int = 3

    def __post_init__(self):
        if self.height % PATCH_SIZE or self.width % PATCH_SIZE:
            raise ValueError(
                f"image size must be a multiple of {PATCH_SIZE}, got {self.height}x{self.width}"
            )

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, self.channels)

    @property
    def num_patches(self) -> int:
        return (self.height // PATCH_SIZE) * (self.width // PATCH_SIZE)


@dataclass(frozen=True)
class TextSpec:
    """A string, tokenized with SentencePiece (its length in tokens varies)."""

    shape: tuple[int, ...] = field(default=(), init=False)


LeafSpec = ContinuousSpec | DiscreteSpec | ImageSpec | TextSpec
ActionSpec = ContinuousSpec | DiscreteSpec
ObservationSpec = Mapping[str, Union[LeafSpec, "ObservationSpec"]]  # noqa: UP007 (recursive)

# Token layout of one timestep (spec section 3): text, then images, then tensors.
_GROUP_ORDER = {TextSpec: 0, ImageSpec: 1, DiscreteSpec: 2, ContinuousSpec: 2}


def flatten_spec(spec: ObservationSpec, prefix: tuple[str, ...] = ()) -> Iterator[tuple]:
    """Yield (path, leaf) for every leaf, in lexicographic order of the key path."""
    for key in sorted(spec):
        if not isinstance(key, str):
            raise ValueError(f"observation keys must be strings, got {key!r}")
        value = spec[key]
        if isinstance(value, Mapping):
            yield from flatten_spec(value, prefix + (key,))
        elif isinstance(value, tuple(_GROUP_ORDER)):
            yield prefix + (key,), value
        else:
            raise ValueError(f"{'/'.join(prefix + (key,))}: not a leaf spec: {value!r}")


def ordered_leaves(spec: ObservationSpec) -> list[tuple[tuple[str, ...], LeafSpec]]:
    """The leaves in token order: text, then images, then discrete/continuous tensors, each
    group in lexicographic order of the key path."""
    leaves = list(flatten_spec(spec))
    return sorted(leaves, key=lambda item: (_GROUP_ORDER[type(item[1])], item[0]))


def action_token_bounds(spec: ActionSpec) -> tuple[np.ndarray, np.ndarray]:
    """Per action dimension, the valid token ids [low, high): the 1024 bins or [0, n)."""
    from gato.tokenizer import CONTINUOUS_OFFSET

    if isinstance(spec, ContinuousSpec):
        lo, hi = CONTINUOUS_OFFSET, CONTINUOUS_OFFSET + NUM_BINS
    elif isinstance(spec, DiscreteSpec):
        lo, hi = 0, spec.n
    else:
        raise ValueError(f"not an action spec: {spec!r}")
    return np.full(spec.size, lo, np.int64), np.full(spec.size, hi, np.int64)


def spec_to_dict(spec) -> dict:
    """A leaf or nested spec as plain JSON-able data."""
    if isinstance(spec, Mapping):
        return {"type": "dict", "fields": {k: spec_to_dict(v) for k, v in sorted(spec.items())}}
    if isinstance(spec, ContinuousSpec):
        return {
            "type": "continuous",
            "shape": list(spec.shape),
            "low": _bound(spec.low),
            "high": _bound(spec.high),
        }
    if isinstance(spec, DiscreteSpec):
        return {"type": "discrete", "shape": list(spec.shape), "n": spec.n}
    if isinstance(spec, ImageSpec):
        return {
            "type": "image",
            "height": spec.height,
            "width": spec.width,
            "channels": spec.channels,
        }
    if isinstance(spec, TextSpec):
        return {"type": "text"}
    raise ValueError(f"not a spec: {spec!r}")


def spec_from_dict(data: Mapping):
    """Inverse of :func:`spec_to_dict`."""
    kind = data.get("type")
    if kind == "dict":
        return {k: spec_from_dict(v) for k, v in data["fields"].items()}
    if kind == "continuous":
        return ContinuousSpec(tuple(data["shape"]), _bound(data["low"]), _bound(data["high"]))
    if kind == "discrete":
        return DiscreteSpec(tuple(data["shape"]), int(data["n"]))
    if kind == "image":
        return ImageSpec(int(data["height"]), int(data["width"]), int(data["channels"]))
    if kind == "text":
        return TextSpec()
    raise ValueError(f"unknown spec type {kind!r} in {dict(data)!r}")


def _bound(value):
    """A bound as JSON-able and hashable data: a float, or a tuple of floats per element."""
    if isinstance(value, list | tuple | np.ndarray):
        return tuple(float(v) for v in np.asarray(value).reshape(-1))
    return float(value)
