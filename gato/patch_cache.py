"""Patch embeddings reused by content while acting: an image patch is encoded once per policy.

The patch encoder (gato/embedding.py: a ResNet v2 block and a linear map per 16x16 patch) is a
pure function of a patch's pixels in eval mode, and the frames an agent sees repeat most of their
patches from step to step: in a game of Pong, 98% of the patches a random policy sees have been
seen before (25 patches a frame, 355 distinct ones in 845 frames, measured with
gato.tokenizer.image_to_patches). So the policy keeps the encoder outputs of the patches it has
met, keyed by their exact bytes, and runs the encoder only on new ones, all of a forward's new
patches in one batch. A hit returns the very tensor that was computed (no hashing shortcut: keys
are compared byte for byte), so the only difference from encoding every patch again is the float
rounding of a different batch size, the same as batching rows already gives.

The cache belongs to one policy and one set of weights: a policy built after the weights change
(fine-tuning's evaluations build a new one each time) starts empty.
"""

from __future__ import annotations

from collections import OrderedDict

import torch


class PatchEmbeddingCache:
    """Encoder outputs of up to `capacity` distinct patches, least recently used evicted first."""

    def __init__(self, capacity: int = 8192):
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self._rows: OrderedDict[bytes, torch.Tensor] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._rows)

    def embed(self, encoder: torch.nn.Module, patches: torch.Tensor) -> torch.Tensor:
        """(N, P, P, C) patches -> (N, d_model) encoder outputs, encoding only unseen ones."""
        n = patches.shape[0]
        raw = patches.detach().reshape(n, -1).contiguous().cpu().view(torch.uint8)  # any dtype
        keys = [bytes(row) for row in raw.numpy()]
        new: dict[bytes, int] = {}  # key -> first index of a patch not yet in the cache
        for i, key in enumerate(keys):
            if key in self._rows:
                self._rows.move_to_end(key)
            elif key not in new:
                new[key] = i
        self.misses += len(new)
        self.hits += n - len(new)
        if new:
            encoded = encoder(patches[list(new.values())])  # (m, d_model): one batch
            for key, row in zip(new, encoded, strict=True):
                self._rows[key] = row.clone()  # not a view that keeps the batch alive
        out = torch.stack([self._rows[key] for key in keys])  # (N, d_model)
        while len(self._rows) > self.capacity:
            self._rows.popitem(last=False)
        return out
