"""`GatoInputs`: a :class:`gato.sequence.TokenBatch` as torch tensors, ready for the model.

Conversion lives here, not in the model, so the model stays a pure nn.Module that only ever sees
tensors. Next-token targets are derived here too: the target of position t is token t+1, counted
only where loss_mask[t+1] is True (text and action tokens, spec section 4) and, in a packed row,
only inside one window: the first token of a window has nothing before it to be predicted from.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch

from gato.sequence import TokenBatch, TokenSequence, collate


@dataclass
class GatoInputs:
    """B rows of T positions and the N image patches they reference, as tensors."""

    tokens: torch.Tensor  # (B, T) int64; 0 at image-patch and padding positions
    kinds: torch.Tensor  # (B, T) uint8 gato.sequence.Kind
    local_positions: torch.Tensor  # (B, T) int64 position inside the timestep
    loss_mask: torch.Tensor  # (B, T) bool, True where the token is a prediction target
    patch_index: torch.Tensor  # (B, T) int64 row into `patches`, -1 where not a patch
    patches: torch.Tensor  # (N, P, P, C) float32 scaled pixels
    patch_rows: torch.Tensor  # (N, 2) float32 normalized [start, end) row interval
    patch_cols: torch.Tensor  # (N, 2) float32 normalized [start, end) column interval
    segments: torch.Tensor | None = None  # (B, T) int32 packed window of each position; None:
    # one window per row (plain causal attention, the fused path)
    patch_embeddings: torch.Tensor | None = None  # (N, d_model) the patch encoder's output for
    # `patches`, computed by the caller (acting reuses the embeddings of patches it has seen);
    # None: the model encodes the patches itself

    @classmethod
    def from_batch(
        cls, batch: TokenBatch, device: torch.device | str | None = None, non_blocking: bool = False
    ) -> GatoInputs:
        """Tensors on `device` (pinned-memory transfers can pass non_blocking=True)."""
        values = {}
        for f in fields(cls):
            if f.name == "patch_embeddings":
                continue  # never part of a batch: a caller's precomputed encoder outputs
            if f.name == "segments" and not batch.segments.any():
                continue  # unpacked rows: the model keeps its plain causal path
            arr = np.ascontiguousarray(getattr(batch, f.name))
            values[f.name] = torch.from_numpy(arr).to(device, non_blocking=non_blocking)
        return cls(**values)

    @classmethod
    def from_sequences(
        cls, seqs: list[TokenSequence], length: int | None = None, device=None
    ) -> GatoInputs:
        """Collate sequences (right-padded to `length`) and convert."""
        return cls.from_batch(collate(seqs, length), device)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.tokens.shape)

    def to(self, device, non_blocking: bool = False) -> GatoInputs:
        return GatoInputs(
            **{
                f.name: getattr(self, f.name).to(device, non_blocking=non_blocking)
                for f in fields(self)
                if getattr(self, f.name) is not None
            }
        )

    def next_token_targets(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(targets, target_mask), both (B, T): targets[:, t] = tokens[:, t+1], counted where
        loss_mask[:, t+1]; the last position has no target."""
        targets = torch.zeros_like(self.tokens)
        targets[:, :-1] = self.tokens[:, 1:]
        mask = torch.zeros_like(self.loss_mask)
        mask[:, :-1] = self.loss_mask[:, 1:]
        if self.segments is not None:
            mask[:, :-1] &= self.segments[:, 1:] == self.segments[:, :-1]
        return targets, mask


def packed_windows(segments: torch.Tensor, max_padding: float = 0.25):
    """The windows of packed rows, bucketed by length: a list of (index, valid), both (n, W):
    the flat (row-major) positions of n windows, each right-padded to the bucket's longest W
    (padding repeats the window's last position), and which entries are real. A bucket's
    windows are at least W / (1 + max_padding) long, so padding costs at most that share."""
    b, t = segments.shape
    starts = torch.ones(b, t, dtype=torch.bool, device=segments.device)
    starts[:, 1:] = segments[:, 1:] != segments[:, :-1]  # every row starts a window
    first = torch.nonzero(starts.reshape(-1)).squeeze(1)  # (N,) flat start of each window
    lengths = torch.diff(first, append=torch.tensor([b * t], device=first.device))
    by_length = torch.argsort(lengths)
    sizes = lengths[by_length].tolist()
    buckets, begin = [], 0
    for i in range(1, len(sizes) + 1):
        if i == len(sizes) or sizes[i] > sizes[begin] * (1 + max_padding):
            chosen = by_length[begin:i]
            width = sizes[i - 1]
            offsets = torch.arange(width, device=first.device)
            valid = offsets[None, :] < lengths[chosen][:, None]  # (n, W)
            last = (first[chosen] + lengths[chosen] - 1)[:, None]
            index = torch.minimum(first[chosen][:, None] + offsets[None, :], last)
            buckets.append((index, valid))
            begin = i
    return buckets
