"""Model benchmarks: training throughput against a plain GPT, and cached decoding latency.

Training rows time forward + backward (no optimizer step) of Gato and of a plain GPT of the same
dimensions (gato/bench/plain_gpt.py) on the same realistic batch: rows alternate between
proprioceptive episodes (39 continuous observations, 4 continuous actions per step) and episodes
that add a 64x64 RGB frame (16 patches per step). `slowdown` is plain GPT tokens/s over the
row's tokens/s (below 1: faster than the plain GPT). "gato, full logits" is Gato with the plain
GPT's head (output layer at every position), which isolates the cost of Gato's embeddings.

Decoding rows time one action token at a time with a full context: through a KVCache (what a
policy does), and by recomputing the whole context window for every token.
"""

from __future__ import annotations

import os
import statistics
import time

import numpy as np
import torch

from gato.bench.plain_gpt import PlainGPT
from gato.config import get_config
from gato.inputs import GatoInputs
from gato.model import Gato
from gato.sequence import Kind
from gato.serialize import tokenize_episode
from gato.specs import ContinuousSpec, ImageSpec
from gato.tokenizer import CONTINUOUS_OFFSET

STATE = {"state": ContinuousSpec((39,))}
PIXELS = {"state": ContinuousSpec((39,)), "frame": ImageSpec(64, 64, 3)}
ACTION = ContinuousSpec((4,))


def make_batch(batch_size: int, length: int, seed: int = 0) -> GatoInputs:
    """`batch_size` windows of `length` tokens from random episodes; odd rows carry images."""
    rng = np.random.default_rng(seed)
    seqs = []
    for i in range(batch_size):
        spec = PIXELS if i % 2 else STATE
        steps = length // (44 + 16 * (i % 2)) + 2
        obs = {"state": rng.normal(size=(steps, 39))}
        if i % 2:
            obs["frame"] = rng.integers(0, 256, (steps, 64, 64, 3), dtype=np.uint8)
        seq = tokenize_episode(obs, rng.uniform(-1, 1, (steps, 4)), spec, ACTION)
        start = int(rng.integers(0, len(seq) - length))
        seqs.append(seq.window(start, start + length))
    return GatoInputs.from_sequences(seqs)


def _median_time(fn, repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def train_rows(size: str, batch_size: int, length: int, repeats: int, warmup: int) -> list[dict]:
    cfg = get_config(size, block_size=max(length, 8))
    torch.manual_seed(0)
    gato, plain = Gato(cfg).train(), PlainGPT(cfg).train()
    inputs = make_batch(batch_size, length)
    targets, mask = inputs.next_token_targets()

    def step(model, *args):
        def run():
            model.zero_grad(set_to_none=True)
            _, loss = model(*args)
            loss.backward()

        return run

    # Gato with a plain GPT's head: output layer and cross-entropy at every position (the
    # plain GPT computes them everywhere too and ignores the non-targets), isolating the cost of
    # Gato's embeddings and rotary attention.
    everywhere = torch.ones_like(mask)

    # Interleave the models' repeats so that load on a shared machine hits them alike.
    runs = {
        "gato": step(gato, inputs, targets, mask),
        "gato, full logits": step(gato, inputs, targets, everywhere),
        "plain gpt": step(plain, inputs.tokens, targets, mask),
    }
    times = {name: [] for name in runs}
    for i in range(warmup + repeats):
        for name, fn in runs.items():
            start = time.perf_counter()
            fn()
            if i >= warmup:
                times[name].append(time.perf_counter() - start)
    n_tokens = batch_size * length
    common = {
        "size": size,
        "batch": f"{batch_size}x{length}",
        "patches": int(inputs.patches.shape[0]),
        "targets": f"{mask.float().mean().item():.0%}",
    }
    rows = []
    for name, ts in times.items():
        # slowdown: median of per-repeat ratios to the plain GPT run of the same repeat, so
        # a change of machine load between repeats cancels out
        ratios = [t / p for t, p in zip(ts, times["plain gpt"], strict=True)]
        rows.append(
            {
                "benchmark": "train fwd+bwd",
                "model": name,
                **common,
                "tokens_per_s": n_tokens / statistics.median(ts),
                "slowdown": statistics.median(ratios),
            }
        )
    return rows


@torch.inference_mode()
def decode_rows(size: str, context: int, tokens: int, recompute_repeats: int) -> list[dict]:
    cfg = get_config(size, block_size=context)
    torch.manual_seed(0)
    model = Gato(cfg).eval()
    window = make_batch(1, context, seed=1)
    # One action token at a time, as a policy samples them (continuous bins, local position 40).
    token = GatoInputs(
        tokens=torch.full((1, 1), CONTINUOUS_OFFSET + 512),
        kinds=torch.full((1, 1), int(Kind.ACTION), dtype=torch.uint8),
        local_positions=torch.full((1, 1), 40),
        loss_mask=torch.ones((1, 1), dtype=torch.bool),
        patch_index=torch.full((1, 1), -1),
        patches=torch.zeros((0, cfg.patch_size, cfg.patch_size, 3)),
        patch_rows=torch.zeros((0, 2)),
        patch_cols=torch.zeros((0, 2)),
    )
    cache = model.new_cache(1)
    model.forward_cached(window, cache)  # prefill: the next tokens see a full window
    # median over single tokens (each sees a full window: the memory slides as it goes)
    cached = _median_time(lambda: model.forward_cached(token, cache), tokens, warmup=2)
    full = _median_time(lambda: model(window, last_only=True), recompute_repeats, 1)
    common = {"benchmark": "decode 1 token", "model": "gato", "size": size, "batch": f"1x{context}"}
    return [
        {**common, "mode": "kv cache", "ms_per_token": cached * 1e3},
        {**common, "mode": "recompute", "ms_per_token": full * 1e3, "slowdown": full / cached},
    ]


def run(quick: bool = False) -> list[dict]:
    # Every core by default; OMP_NUM_THREADS=1 gives steadier ratios on a machine others share.
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1))
    if quick:  # a smoke run: every code path, tiny shapes
        return [
            *train_rows("debug", 2, 64, repeats=1, warmup=1),
            *decode_rows("debug", 32, tokens=2, recompute_repeats=1),
        ]
    return [
        *train_rows("tiny", 4, 256, repeats=7, warmup=2),
        *train_rows("79M", 2, 256, repeats=7, warmup=1),
        *decode_rows("79M", 1024, tokens=32, recompute_repeats=3),
    ]
