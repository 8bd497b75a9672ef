"""Gato's input embedding (spec section 5): token table, local positions, image patches.

Every non-image token is looked up in a learned table that the output layer shares (tied). Image
patches go through one pre-activation ResNet v2 block (GroupNorm with 32 groups, GELU) and a linear
map to the model width, plus learned row and column patch position encodings. Every token, patch
or not, gets a learned local position encoding: its position inside its own timestep.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from gato.config import GatoConfig
from gato.inputs import GatoInputs


class ResidualBlockV2(nn.Module):
    """Pre-activation ResNet v2 block: GN -> GELU -> conv3x3 -> GN -> GELU -> conv3x3, + input."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(32, channels)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm2 = nn.GroupNorm(32, channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, Cp, P, P)
        h = self.conv1(F.gelu(self.norm1(x)))
        h = self.conv2(F.gelu(self.norm2(h)))
        return x + h


class PatchEncoder(nn.Module):
    """(N, P, P, C) patches -> (N, d_model): input conv, one ResNet v2 block, linear map."""

    def __init__(self, config: GatoConfig):
        super().__init__()
        p, cp = config.patch_size, config.patch_channels
        # GroupNorm(32) needs a channel count divisible by 32: lift the 3 pixel channels first.
        self.conv_in = nn.Conv2d(config.image_channels, cp, 3, padding=1)
        self.block = ResidualBlockV2(cp)
        self.proj = nn.Linear(cp * p * p, config.d_model)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        x = patches.permute(0, 3, 1, 2)  # (N, C, P, P) channels first for conv2d
        x = self.block(self.conv_in(x))  # (N, Cp, P, P)
        return self.proj(x.flatten(1))  # (N, d_model)


class PatchPositions(nn.Module):
    """Learned row and column encodings from each patch's normalized [start, end) intervals.

    An interval is quantized to bins [round(start * bins), round(end * bins)) (at least one bin
    wide). Training samples an index uniformly inside it, so the model sees a spread of positions
    and generalizes across image sizes; evaluation takes the rounded mean of the interval.
    """

    def __init__(self, config: GatoConfig):
        super().__init__()
        self.bins = config.patch_position_bins
        self.rows = nn.Embedding(self.bins, config.d_model)
        self.cols = nn.Embedding(self.bins, config.d_model)

    def index(self, interval: torch.Tensor) -> torch.Tensor:
        """(N, 2) normalized intervals -> (N,) int64 bin indices (random in training mode)."""
        start = torch.round(interval[:, 0] * self.bins).long().clamp(0, self.bins - 1)
        end = torch.round(interval[:, 1] * self.bins).long()
        end = torch.maximum(end.clamp(max=self.bins), start + 1)
        if self.training:
            u = torch.rand(start.shape, device=start.device)
            return torch.minimum(start + (u * (end - start)).long(), end - 1)
        # mean of the bin indices [start, end - 1], rounded half up
        return (start + end) // 2

    def forward(self, patch_rows: torch.Tensor, patch_cols: torch.Tensor) -> torch.Tensor:
        return self.rows(self.index(patch_rows)) + self.cols(self.index(patch_cols))  # (N, C)


class GatoEmbedding(nn.Module):
    """GatoInputs -> (B, T, d_model) embeddings."""

    def __init__(self, config: GatoConfig):
        super().__init__()
        self.max_local = config.max_local_positions
        self.wte = nn.Embedding(config.padded_vocab_size, config.d_model)  # tied with the head
        self.wle = nn.Embedding(config.max_local_positions, config.d_model)
        self.patch_encoder = PatchEncoder(config)
        self.patch_positions = PatchPositions(config)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, inputs: GatoInputs) -> torch.Tensor:
        b, t = inputs.tokens.shape
        x = self.wte(inputs.tokens)  # (B, T, C)
        is_patch = inputs.patch_index >= 0  # (B, T)
        if inputs.patches.shape[0] > 0 and bool(is_patch.any()):
            # Encode only the real patches, then overwrite (not add to) the token-0 embeddings
            # at their positions: index_put without accumulate also blocks wte's gradient there.
            flat = is_patch.view(-1).nonzero().squeeze(1)  # (n,) positions into B*T
            rows = inputs.patch_index.view(-1)[flat]  # (n,) rows into `patches`
            if inputs.patch_embeddings is not None:  # encoded by the caller (gato/patch_cache.py)
                p = inputs.patch_embeddings[rows]  # (n, C)
            else:
                p = self.patch_encoder(inputs.patches[rows])  # (n, C)
            p = p + self.patch_positions(inputs.patch_rows[rows], inputs.patch_cols[rows])
            x = x.view(b * t, -1).index_put((flat,), p.to(x.dtype)).view(b, t, -1)
        check_local_positions(inputs.local_positions, self.max_local)
        return self.drop(x + self.wle(inputs.local_positions))  # (B, T, C)


def check_local_positions(local: torch.Tensor, table_size: int) -> None:
    """Raise ValueError unless every local position indexes the table. Never clamp: a clamped
    position silently gives the tail of a long timestep (its separator and action included) one
    shared encoding, and nn.Embedding's own failure (a CUDA device assert) names nothing."""
    if local.numel() == 0:
        return
    low, high = torch.stack(torch.aminmax(local)).tolist()  # one host sync per forward
    if low < 0 or high >= table_size:
        bad = low if low < 0 else high
        raise ValueError(
            f"local position {bad} does not fit the local-position table of "
            f"{table_size} entries (max_local_positions): a timestep of this task is longer "
            "than the model size allows; choose a size with a larger table "
            "(gato.layout_check.check_tasks_fit checks this before a run starts)"
        )
