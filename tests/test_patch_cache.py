"""Patch embeddings reused by content (gato/patch_cache.py): the same outputs as encoding every
patch, the encoder run only on patches not seen before, bounded memory."""

from __future__ import annotations

import pytest
import torch
from model_fixtures import debug_model

from gato.patch_cache import PatchEmbeddingCache


class CountingEncoder(torch.nn.Module):
    """The debug model's patch encoder, counting the patches it encodes."""

    def __init__(self, encoder):
        super().__init__()
        self.encoder, self.encoded = encoder, 0

    def forward(self, patches):
        self.encoded += patches.shape[0]
        return self.encoder(patches)


@torch.no_grad()
def test_cache_returns_the_encoder_outputs_and_skips_seen_patches():
    encoder = CountingEncoder(debug_model().embed.patch_encoder)
    g = torch.Generator().manual_seed(0)
    distinct = torch.randn(6, 16, 16, 3, generator=g)
    cache = PatchEmbeddingCache(capacity=16)
    first = distinct[[0, 1, 2, 1, 0]]  # repeats inside one call are encoded once
    out = cache.embed(encoder, first)
    assert encoder.encoded == 3 and (cache.hits, cache.misses) == (2, 3)
    assert (out - encoder.encoder(first)).abs().max().item() < 1e-5
    second = distinct[[2, 3, 4, 5, 0]]  # 2 and 0 are known
    out = cache.embed(encoder, second)
    assert encoder.encoded == 6 and len(cache) == 6
    assert (out - encoder.encoder(second)).abs().max().item() < 1e-5
    nudged = second.clone()
    nudged[0, 0, 0, 0] += 1e-6  # one pixel off by a hair is another patch, never a hit
    cache.embed(encoder, nudged)
    assert encoder.encoded == 7


@torch.no_grad()
def test_cache_is_bounded_least_recently_used_first():
    encoder = CountingEncoder(debug_model().embed.patch_encoder)
    patches = torch.randn(5, 16, 16, 3, generator=torch.Generator().manual_seed(1))
    cache = PatchEmbeddingCache(capacity=3)
    cache.embed(encoder, patches[:3])
    cache.embed(encoder, patches[[0]])  # 0 is now the most recent: 1 goes first
    cache.embed(encoder, patches[[3]])
    assert len(cache) == 3
    encoder.encoded = 0
    cache.embed(encoder, patches[[0, 2, 3]])
    assert encoder.encoded == 0
    cache.embed(encoder, patches[[1]])
    assert encoder.encoded == 1
    with pytest.raises(ValueError, match="capacity"):
        PatchEmbeddingCache(capacity=0)


@torch.no_grad()
def test_bf16_patches_are_keyed_too():
    encoder = debug_model().to(torch.bfloat16).embed.patch_encoder
    patches = torch.randn(2, 16, 16, 3).to(torch.bfloat16)
    cache = PatchEmbeddingCache()
    cache.embed(encoder, patches)
    out = cache.embed(encoder, patches.flip(0))
    assert cache.hits == 2 and out.dtype == torch.bfloat16
