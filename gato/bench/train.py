"""Training throughput: whole optimizer steps on this machine, against the sampler's supply.

A timed step is what `python -m gato.train` does per step in one process: forward with the masked
loss, backward, gradient clipping and the AdamW update (gato/optim.py). Batches come from the real
sampler over the collected data (``make data``; ``$GATO_DATA`` or ./data, every task, prompts
on), else from the synthetic mix of gato/bench/model.py (the `source` column says which).

`sampler tok/s` is what one sampler process builds (`SequenceSampler.rows`, collation included)
for the same batches; `workers needed` = model tok/s / sampler tok/s is how many --num-workers
keep the model fed (below 1: one worker is more than enough).
"""

from __future__ import annotations

import os
import statistics
import time

import torch

from gato.bench.model import make_batch
from gato.config import get_config
from gato.inputs import GatoInputs
from gato.model import Gato
from gato.optim import build_optimizer


def _batches(batch: int, length: int, count: int) -> tuple[list[GatoInputs], str, float | None]:
    """`count` batches, their source, and the sampler's tokens/s (None for synthetic data)."""
    from gato.data import DataConfig, SequenceSampler
    from gato.datasets import data_root

    try:
        sampler = SequenceSampler(DataConfig(data_dir=str(data_root()), seq_len=length))
    except (FileNotFoundError, ValueError):
        return [make_batch(batch, length, seed=i) for i in range(count)], "synthetic", None
    sampler.rows(0, range(batch))  # warm-up: lazy tokenization caches
    start = time.perf_counter()
    rows = [sampler.rows(step, range(batch)) for step in range(1, count + 1)]
    supply = count * batch * length / (time.perf_counter() - start)
    return (
        [GatoInputs.from_batch(r.batch) for r in rows],
        f"data ({len(sampler.tasks)} tasks)",
        supply,
    )


def train_row(size: str, batch: int, length: int, repeats: int, warmup: int) -> dict:
    torch.manual_seed(0)
    model = Gato(get_config(size, block_size=length))
    optimizer = build_optimizer(model, lr=1e-4, weight_decay=0.1)
    batches, source, supply = _batches(batch, length, warmup + repeats)
    times = []
    for i, inputs in enumerate(batches):
        start = time.perf_counter()
        _, loss = model(inputs, *inputs.next_token_targets())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    step_s = statistics.median(times)
    tok_s = batch * length / step_s
    return {
        "benchmark": f"train step, {size}",
        "batch": f"{batch}x{length}",
        "source": source,
        "params (M)": model.num_params() / 1e6,
        "step s": step_s,
        "tok/s": tok_s,
        "sampler tok/s": supply if supply is not None else "",
        "workers needed": tok_s / supply if supply else "",
    }


def run(quick: bool = False) -> list[dict]:
    # Every core by default; OMP_NUM_THREADS=1 gives steadier figures on a machine others share.
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1))
    if quick:  # a smoke run: every code path, tiny shapes
        return [train_row("debug", 2, 64, repeats=1, warmup=1)]
    return [
        train_row("debug", 16, 128, repeats=5, warmup=2),
        train_row("tiny", 16, 512, repeats=5, warmup=1),
    ]


if __name__ == "__main__":
    from gato.bench.__main__ import format_table

    print(format_table(run(quick=True)))
