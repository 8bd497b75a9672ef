"""Training-data throughput of one sampler process: full L=1024 rows, in-process.

What one DataLoader worker delivers (lazy tokenization, prompts, collation into a padded batch),
to compare with the model's tokens/s: a run needs (model tokens/s) / (this) workers. Uses the
collected data (``make data``; ``$GATO_DATA`` or ./data); a mix whose data is missing gives a row
that says so instead of a figure.
"""

from __future__ import annotations

import time

import numpy as np

from gato.data import DataConfig, SequenceSampler
from gato.data_sources import list_complete_tasks
from gato.datasets import MAKE_DATA_HINT, data_root

SEQ_LEN = 1024
BATCH = 32  # rows per timed call of SequenceSampler.rows
MIXES = {
    "vector mix (cartpole + metaworld)": ("cartpole.", "metaworld."),
    "text-observation mix (babyai)": ("babyai.",),
    "image mix (atari pong, 80x80 RGB)": ("atari.pong",),
}


def _measure(name: str, tasks: list[str], data_dir: str, batches: int) -> dict:
    start = time.perf_counter()
    sampler = SequenceSampler(DataConfig(data_dir=data_dir, tasks=tuple(tasks), seq_len=SEQ_LEN))
    load_s = time.perf_counter() - start
    sampler.rows(0, range(BATCH))  # warm-up (text tokenizer caches, first allocations)
    times, real = [], 0
    for step in range(1, batches + 1):
        start = time.perf_counter()
        rows = sampler.rows(step, range(BATCH))
        times.append(time.perf_counter() - start)
        real += int((rows.batch.kinds != 0).sum())
    median = float(np.median(times))
    return {
        "benchmark": name,
        "tasks": len(tasks),
        "rows": batches * BATCH,
        "load_s": load_s,
        "ms_per_row": 1e3 * median / BATCH,
        "tokens/s": BATCH * SEQ_LEN / median,  # padded row slots, what the model consumes
        "non_pad_share": real / (batches * BATCH * SEQ_LEN),
        "note": "",
    }


def run(quick: bool = False) -> list[dict]:
    data_dir = str(data_root())
    try:
        have = list_complete_tasks(data_dir)
    except FileNotFoundError:
        have = []
    rows = []
    for name, prefixes in MIXES.items():
        tasks = [t for t in have if t.startswith(prefixes)]
        if not tasks:
            note = f"skipped: no {'/'.join(prefixes)} data in {data_dir}; {MAKE_DATA_HINT}"
            rows.append({"benchmark": name, "note": note})
            continue
        rows.append(_measure(name, tasks, data_dir, batches=3 if quick else 20))
    return rows


if __name__ == "__main__":
    from gato.bench.__main__ import format_table

    print(format_table(run(quick=True)))
