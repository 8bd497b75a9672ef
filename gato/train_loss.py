"""The loss side of a training step: the batch's target count (an error when it is zero),
per-domain token losses and their merge over ranks."""

from __future__ import annotations

from collections import defaultdict

import torch
import torch.nn.functional as F

from gato import distributed as D
from gato.errors import UserError


class NoTargetsError(UserError):
    """A training batch holds no loss target: its step would train on nothing."""


def global_targets(step: int, micro: list, world: D.World) -> tuple[list[int], torch.Tensor]:
    """(next-token targets of each micro-batch of this rank, their sum over the global batch).
    `step`: the optimizer steps done before this one (the error names it as logged, step + 1).

    Zero targets in the whole global batch raise NoTargetsError naming the cause, instead of a
    step that reports loss 0 and still moves the weights (AdamW's decay). One process knows the
    count without a device sync; several read the all-reduced count back (one scalar)."""
    counts = [int(mb.batch.loss_mask[:, 1:].sum()) for mb in micro]
    total = D.all_reduce_sum(torch.tensor(float(sum(counts)), device=world.device), world)
    n = int(total.item()) if world.distributed else sum(counts)
    if n == 0:
        rows = sum(len(mb.tasks) for mb in micro) * world.world_size
        seq_len = micro[0].batch.loss_mask.shape[1] if micro else 0
        tasks = sorted({t for mb in micro for t in mb.tasks})
        raise NoTargetsError(
            f"step {step + 1}: the batch ({rows} rows of {seq_len} tokens, tasks "
            f"{', '.join(tasks)}) holds no loss target: only action and text tokens after a "
            "row's first are targets, and no row's window reached one; a window barely longer "
            "than one timestep often misses them: use a longer --seq-len (or more rows per "
            "batch)"
        )
    return counts, total


def domain_losses(logits, targets, mask, domains: list[str], out: dict) -> None:
    """Add each domain's sum of token losses and target count of one micro-batch to `out`."""
    ce = F.cross_entropy(logits.float(), targets[mask], reduction="none")  # (M,)
    rows = mask.nonzero()[:, 0]  # (M,) row of each target, the order of `logits`
    for d in sorted(set(domains)):
        in_d = torch.tensor([x == d for x in domains], device=ce.device)[rows]
        out[d][0] += float(ce[in_d].sum())
        out[d][1] += int(in_d.sum())


def merge_domains(parts: list[dict], prefix: str) -> dict[str, float]:
    """Per-rank {domain: [loss sum, count]} -> {prefix/domain: mean} and {prefix: mean}."""
    total = defaultdict(lambda: [0.0, 0])
    for part in parts:
        for d, (s, n) in part.items():
            total[d][0] += s
            total[d][1] += n
    out = {f"{prefix}/{d}": s / n for d, (s, n) in sorted(total.items()) if n}
    n_all = sum(n for _, n in total.values())
    if n_all:
        out[prefix] = sum(s for s, _ in total.values()) / n_all
    return out
