"""Gato's token layout: one typed structure for every sequence the model reads.

A :class:`TokenSequence` holds, aligned position by position, what the model needs: token ids,
what kind of token each one is, its local position inside its timestep, whether it is a loss
target, which timestep it belongs to, and, for image-patch positions, the patch pixels and the
patch's row/column interval. The i-th patch in ``patches`` belongs to the i-th position whose kind
is ``Kind.IMAGE``; that invariant is what :meth:`TokenSequence.window` and :func:`concatenate`
preserve. :func:`collate` pads sequences into a rectangular :class:`TokenBatch`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import IntEnum

import numpy as np

from gato.tokenizer import PATCH_SIZE


class Kind(IntEnum):
    """What a position holds. Padding is 0 so that zero-filled arrays are padding."""

    PAD = 0
    TEXT = 1
    IMAGE = 2
    DISCRETE = 3
    CONTINUOUS = 4
    SEPARATOR = 5
    ACTION = 6


@dataclass
class TokenSequence:
    """One token sequence (T positions, P image patches of C channels)."""

    tokens: np.ndarray  # (T,) int64 ids; 0 at image-patch and padding positions
    kinds: np.ndarray  # (T,) uint8 Kind
    local_positions: np.ndarray  # (T,) int64 position inside its own timestep
    loss_mask: np.ndarray  # (T,) bool, True where the token is a prediction target
    timesteps: np.ndarray  # (T,) int64 timestep (or document / pair) index; -1 for padding
    patches: np.ndarray  # (P, 16, 16, C) float32 scaled pixels
    patch_rows: np.ndarray  # (P, 2) float32 normalized [start, end) row interval
    patch_cols: np.ndarray  # (P, 2) float32 normalized [start, end) column interval

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def num_patches(self) -> int:
        return int(self.patches.shape[0])

    def validate(self) -> TokenSequence:
        """Check shapes and the patch invariant; return self so it chains."""
        t = len(self)
        for name in ("kinds", "local_positions", "loss_mask", "timesteps"):
            if getattr(self, name).shape != (t,):
                raise ValueError(f"{name} has shape {getattr(self, name).shape}, expected ({t},)")
        n_image = int(np.count_nonzero(self.kinds == Kind.IMAGE))
        if self.patches.shape[:3] != (n_image, PATCH_SIZE, PATCH_SIZE):
            raise ValueError(f"{n_image} image positions but patches of shape {self.patches.shape}")
        if self.patch_rows.shape != (n_image, 2) or self.patch_cols.shape != (n_image, 2):
            raise ValueError("patch_rows and patch_cols must be (num_patches, 2)")
        return self

    def window(self, start: int, stop: int) -> TokenSequence:
        """Positions [start, stop), with exactly the patches of the image positions inside."""
        first = int(np.count_nonzero(self.kinds[:start] == Kind.IMAGE))
        last = first + int(np.count_nonzero(self.kinds[start:stop] == Kind.IMAGE))
        return TokenSequence(
            tokens=self.tokens[start:stop],
            kinds=self.kinds[start:stop],
            local_positions=self.local_positions[start:stop],
            loss_mask=self.loss_mask[start:stop],
            timesteps=self.timesteps[start:stop],
            patches=self.patches[first:last],
            patch_rows=self.patch_rows[first:last],
            patch_cols=self.patch_cols[first:last],
        )

    def without_targets(self) -> TokenSequence:
        """The same tokens with no loss targets (for prompts and context)."""
        seq = TokenSequence(**{f.name: getattr(self, f.name) for f in fields(self)})
        seq.loss_mask = np.zeros_like(self.loss_mask)
        return seq

    def timestep_starts(self) -> np.ndarray:
        """Indices where a new timestep (or document / pair) begins."""
        ts = self.timesteps
        if len(ts) == 0:
            return np.zeros(0, np.int64)
        return np.flatnonzero(np.concatenate([[True], ts[1:] != ts[:-1]]) & (ts >= 0))


def empty_sequence(channels: int = 3) -> TokenSequence:
    """A sequence of length 0."""
    return TokenSequence(
        tokens=np.zeros(0, np.int64),
        kinds=np.zeros(0, np.uint8),
        local_positions=np.zeros(0, np.int64),
        loss_mask=np.zeros(0, bool),
        timesteps=np.zeros(0, np.int64),
        patches=np.zeros((0, PATCH_SIZE, PATCH_SIZE, channels), np.float32),
        patch_rows=np.zeros((0, 2), np.float32),
        patch_cols=np.zeros((0, 2), np.float32),
    )


def concatenate(seqs: list[TokenSequence]) -> TokenSequence:
    """Sequences one after another (timestep indices are kept as they are)."""
    if not seqs:
        return empty_sequence()
    if len(seqs) == 1:
        return seqs[0]
    with_patches = [s.patches for s in seqs if s.num_patches] or [seqs[0].patches]
    return TokenSequence(
        tokens=np.concatenate([s.tokens for s in seqs]),
        kinds=np.concatenate([s.kinds for s in seqs]),
        local_positions=np.concatenate([s.local_positions for s in seqs]),
        loss_mask=np.concatenate([s.loss_mask for s in seqs]),
        timesteps=np.concatenate([s.timesteps for s in seqs]),
        patches=np.concatenate(with_patches),
        patch_rows=np.concatenate([s.patch_rows for s in seqs]),
        patch_cols=np.concatenate([s.patch_cols for s in seqs]),
    )


@dataclass
class TokenBatch:
    """B sequences padded to length L; patches of all rows flattened into one array."""

    tokens: np.ndarray  # (B, L) int64
    kinds: np.ndarray  # (B, L) uint8
    local_positions: np.ndarray  # (B, L) int64
    loss_mask: np.ndarray  # (B, L) bool
    patch_index: np.ndarray  # (B, L) int64 row into `patches`, -1 where not an image patch
    patches: np.ndarray  # (N, 16, 16, C) float32
    patch_rows: np.ndarray  # (N, 2) float32
    patch_cols: np.ndarray  # (N, 2) float32
    segments: np.ndarray  # (B, L) int32 window of each position in a packed row (all 0 unpacked)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.tokens.shape)


def collate(
    seqs: list[TokenSequence],
    length: int | None = None,
    segments: list[np.ndarray] | None = None,
) -> TokenBatch:
    """Stack sequences into a batch, right-padded to `length` (default: the longest).

    `segments[i]` (len(seqs[i]),): which packed window each position of row i belongs to
    (gato/data.py's window_steps); attention and targets stay inside a window. Default: one."""
    if not seqs:
        raise ValueError("cannot collate an empty list of sequences")
    if segments is not None and [len(s) for s in segments] != [len(s) for s in seqs]:
        raise ValueError("segments must give one window index per position of every row")
    longest = max(len(s) for s in seqs)
    length = longest if length is None else length
    if longest > length:
        raise ValueError(f"a sequence of {longest} tokens does not fit a batch of length {length}")
    b = len(seqs)
    tokens = np.zeros((b, length), np.int64)
    kinds = np.zeros((b, length), np.uint8)
    local = np.zeros((b, length), np.int64)
    mask = np.zeros((b, length), bool)
    windows = np.zeros((b, length), np.int32)
    for i, s in enumerate(seqs):
        n = len(s)
        if segments is not None:
            windows[i, :n] = segments[i]
            windows[i, n:] = segments[i][-1] if n else 0  # padding: no query before sees it
        tokens[i, :n], kinds[i, :n] = s.tokens, s.kinds
        local[i, :n], mask[i, :n] = s.local_positions, s.loss_mask
    is_image = kinds == Kind.IMAGE
    patch_index = np.full((b, length), -1, np.int64)
    patch_index[is_image] = np.arange(int(is_image.sum()))  # row-major == sequence order
    channels = {s.patches.shape[-1] for s in seqs if s.num_patches}
    if len(channels) > 1:
        raise ValueError(f"cannot batch images with different channel counts {sorted(channels)}")
    merged = concatenate(seqs)
    return TokenBatch(
        tokens=tokens,
        kinds=kinds,
        local_positions=local,
        loss_mask=mask,
        patch_index=patch_index,
        patches=merged.patches,
        patch_rows=merged.patch_rows,
        patch_cols=merged.patch_cols,
        segments=windows,
    )
