"""Cached decoding (KVCache + Gato.forward_cached) equals the full forward, exactly (float32)."""

from __future__ import annotations

import itertools

import pytest
import torch
from model_fixtures import debug_model, episode

from gato.inputs import GatoInputs
from gato.kv_cache import KVCache
from gato.sequence import concatenate

CHUNKS = (5, 1, 7, 3, 1, 1, 13, 2, 40, 1, 4)  # varying sizes, one larger than the window


def feed(model, seqs, cache, sizes=CHUNKS):
    """Feed the sequences chunk by chunk; return the logits of every position (B, T, V)."""
    out, start, total = [], 0, len(seqs[0])
    for size in itertools.cycle(sizes):
        if start >= total:
            break
        stop = min(start + size, total)
        chunk = GatoInputs.from_sequences([s.window(start, stop) for s in seqs])
        out.append(model.forward_cached(chunk, cache, last_only=False))
        start = stop
    return torch.cat(out, dim=1)


def two_rows(steps):
    seqs = [episode(1, steps), episode(3, steps)]  # same spec and text length: same layout
    assert len(seqs[0]) == len(seqs[1])
    return seqs


@torch.no_grad()
def test_cached_equals_full_forward_within_window():
    model = debug_model()
    seqs = two_rows(steps=6)  # 120 tokens, 24 image patches per row, block_size 128
    assert len(seqs[0]) <= model.config.block_size
    full, _ = model(GatoInputs.from_sequences(seqs))
    cache = model.new_cache(batch_size=2)
    cached = feed(model, seqs, cache)
    assert (cached - full).abs().max().item() < 1e-4
    assert cache.positions == [len(seqs[0])] * 2
    # last-position logits, one token at a time after a prefill
    cache.reset()
    model.forward_cached(GatoInputs.from_sequences([s.window(0, 50) for s in seqs]), cache)
    for t in range(50, 60):
        last = model.forward_cached(
            GatoInputs.from_sequences([s.window(t, t + 1) for s in seqs]), cache
        )
        assert (last - full[:, t]).abs().max().item() < 1e-4


@torch.no_grad()
def test_cached_slides_past_the_window():
    """Past block_size tokens the memory slides: every query sees the last `window` keys of
    each layer, which is exactly a full forward with a banded causal mask of that width."""
    model = debug_model(block_size=32)
    seqs = two_rows(steps=8)  # 160 tokens: the 32-token window slides many times
    inputs = GatoInputs.from_sequences(seqs)
    reference, _ = model(inputs, attn_window=32)
    causal, _ = model(inputs)
    for capacity in (None, 33):  # default 2x window (slides), tiny (reallocates for big chunks)
        cache = KVCache.for_model(model, batch_size=2, capacity=capacity)
        cached = feed(model, seqs, cache)
        assert (cached - reference).abs().max().item() < 1e-4
        assert cache.window_starts == [len(seqs[0]) - 31] * 2
    # the band matters: plain causal attention over the whole stream differs after the window
    assert torch.equal(reference[:, :32], causal[:, :32])
    assert (reference[:, 40:] - causal[:, 40:]).abs().max().item() > 1e-3


@torch.no_grad()
def test_one_layer_cache_equals_forward_over_the_last_window():
    """With one layer, keys depend on their own token only, so the sliding memory equals a
    fresh full forward over the last block_size tokens (positions from 0: rotary attention
    depends only on offsets, the cache's keys sit at absolute positions up to 160)."""
    model = debug_model(n_layer=1, block_size=32)
    seq = episode(5, steps=8)
    cache = model.new_cache(batch_size=1)
    model.forward_cached(GatoInputs.from_sequences([seq.window(0, 20)]), cache)
    for t in range(20, len(seq)):
        last = model.forward_cached(GatoInputs.from_sequences([seq.window(t, t + 1)]), cache)
        if t % 9 == 0 or t == len(seq) - 1:
            window = GatoInputs.from_sequences([seq.window(max(0, t - 31), t + 1)])
            ref, _ = model(window, last_only=True)
            assert (last - ref).abs().max().item() < 1e-4


@torch.no_grad()
def test_low_precision_cache():
    """A bfloat16 cache (half the memory) with a float32 model stays close to float32."""
    model = debug_model()
    seqs = two_rows(steps=4)
    full, _ = model(GatoInputs.from_sequences(seqs))
    cache = KVCache.for_model(model, batch_size=2)
    cache16 = KVCache(2, 2, 4, 16, window=128, dtype=torch.bfloat16)
    assert (feed(model, seqs, cache) - full).abs().max().item() < 1e-4
    assert (feed(model, seqs, cache16) - full).abs().max().item() < 5e-2


def test_cache_is_owned_by_the_caller():
    model = debug_model()
    seq = episode(1)
    names = {n for n, _ in model.named_buffers()}
    assert not names  # no rotary tables or caches stored on the module
    cache = model.new_cache(1)
    with torch.no_grad():
        model.forward_cached(GatoInputs.from_sequences([seq.window(0, 10)]), cache)
    assert cache.positions == [10] and not any(n for n, _ in model.named_buffers())
    state = model.state_dict()
    assert all(not k.startswith("cache") for k in state)


@torch.no_grad()
def test_ragged_rows_equal_independent_caches():
    """Rows of different lengths, fed ragged chunks (right-padded, `lengths` real tokens per
    row), with one row starting late and one row reset mid-way, each equal a single-row cache
    fed the same tokens; and past the window the band still holds per row."""
    model = debug_model(block_size=32)
    seqs = [episode(1, steps=7), episode(2, steps=9), episode(5, steps=6)]  # 140, 144, 120 tokens
    refs = [model(GatoInputs.from_sequences([s]), attn_window=32)[0][0] for s in seqs]
    cache = KVCache.for_model(model, batch_size=3, capacity=40)  # small: slides and grows
    cursors, outs = [0, 0, 0], [[], [], []]
    schedule = [(7, 3, 11), (1, 1, 1), (13, 2, 1), (1, 5, 1), (30, 1, 17), (1, 1, 1)]
    step = 0
    while any(c < len(s) for c, s in zip(cursors, seqs, strict=True)):
        sizes = schedule[step % len(schedule)]
        step += 1
        rows = [r for r in range(3) if cursors[r] < len(seqs[r])]
        if step < 3:
            rows = [r for r in rows if r != 2]  # row 2 starts two chunks late
        chunks = [
            seqs[r].window(cursors[r], min(cursors[r] + sizes[r], len(seqs[r]))) for r in rows
        ]
        lengths = [len(c) for c in chunks]
        inputs = GatoInputs.from_sequences(chunks)
        logits = model.forward_cached(inputs, cache, last_only=False, lengths=lengths, rows=rows)
        for i, r in enumerate(rows):
            outs[r].append(logits[i, : lengths[i]])
            cursors[r] += lengths[i]
    for r, seq in enumerate(seqs):
        got = torch.cat(outs[r])
        assert got.shape[0] == len(seq)
        assert (got - refs[r]).abs().max().item() < 1e-4, r
    assert cache.positions == [len(s) for s in seqs]
    # last_only returns each row's last real token, not the padded chunk's last position
    cache.reset([1])
    first = seqs[1].window(0, 5)
    out = model.forward_cached(
        GatoInputs.from_sequences([first, seqs[0].window(0, 2)]), cache, lengths=[5, 2], rows=[1, 0]
    )
    assert (out[0] - refs[1][4]).abs().max().item() < 1e-4


@torch.no_grad()
def test_rows_idle_and_restart_in_place():
    """A policy's rows keep their cache slots: a retired row is simply not fed while the others
    go on, and a new episode resets its row in place."""
    model = debug_model(block_size=32)
    seqs = [episode(1, steps=3), episode(3, steps=3)]
    ref, _ = model(GatoInputs.from_sequences(seqs))
    cache = model.new_cache(batch_size=2)
    model.forward_cached(GatoInputs.from_sequences([s.window(0, 20) for s in seqs]), cache)
    out = model.forward_cached(GatoInputs.from_sequences([seqs[1].window(20, 21)]), cache, rows=[1])
    assert (out[0] - ref[1, 20]).abs().max().item() < 1e-4
    assert cache.batch_size == 2 and cache.positions == [20, 21]  # row 0 idle, untouched
    cache.reset([0])
    assert cache.positions == [0, 21]
    out = model.forward_cached(
        GatoInputs.from_sequences([seqs[0].window(0, 1), seqs[1].window(21, 22)]), cache
    )
    assert (out[0] - ref[0, 0]).abs().max().item() < 1e-4
    assert (out[1] - ref[1, 21]).abs().max().item() < 1e-4


def test_bad_row_lengths_are_errors():
    cache = KVCache(1, 2, 1, 2, window=4)
    for lengths in ([0, 1], [3, 1], [1]):
        try:
            cache.prepare(2, lengths)
        except ValueError as e:
            assert "length" in str(e)
        else:
            raise AssertionError(f"{lengths} accepted")


@torch.no_grad()
def test_truncate_falls_back_to_a_prefix():
    """Window memory's fallback: a row cut back to its first slots continues as if the tokens
    after them had never been fed (its next chunk takes their positions), the other row
    untouched."""
    model = debug_model()
    seqs = two_rows(steps=3)
    other = episode(5, steps=3)  # a different continuation after the shared 20-token prefix
    branch = concatenate([seqs[1].window(0, 20), other])
    ref, _ = model(GatoInputs.from_sequences([seqs[0], branch]))
    cache = model.new_cache(batch_size=2)
    model.forward_cached(GatoInputs.from_sequences([s.window(0, 30) for s in seqs]), cache)
    cache.truncate([1], 20)
    assert cache.lengths == [30, 20] and cache.positions == [30, 20]
    out = model.forward_cached(
        GatoInputs.from_sequences([seqs[0].window(30, 35), other.window(0, 5)]),
        cache,
        last_only=False,
    )
    assert (out[0] - ref[0, 30:35]).abs().max().item() < 1e-4
    assert (out[1] - ref[1, 20:25]).abs().max().item() < 1e-4
    with pytest.raises(ValueError, match="cannot keep 40"):
        cache.truncate([0], 40)


@torch.no_grad()
def test_vocab_slice_scores_only_those_ids():
    """forward_cached / forward with vocab=(lo, hi): the same logits as the full output layer's
    columns lo..hi (acting reads only its action range); a range outside the table is refused."""
    model = debug_model()
    seqs = two_rows(steps=2)
    full, _ = model(GatoInputs.from_sequences(seqs), last_only=True)
    part, _ = model(GatoInputs.from_sequences(seqs), last_only=True, vocab=(32000, 33024))
    assert part.shape == (2, 1024)
    assert (part - full[:, 32000:33024]).abs().max().item() < 1e-5
    cache = model.new_cache(batch_size=2)
    cached = model.forward_cached(GatoInputs.from_sequences(seqs), cache, vocab=(3, 10))
    assert (cached - full[:, 3:10]).abs().max().item() < 1e-4
    for bad in ((5, 5), (-1, 4), (0, model.config.vocab_size + 1)):
        with pytest.raises(ValueError, match="vocab range"):
            model(GatoInputs.from_sequences(seqs), last_only=True, vocab=bad)
