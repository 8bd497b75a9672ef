"""The loss side of a training step: per-domain token losses and their merge over ranks."""

from __future__ import annotations

from collections import defaultdict

import torch
import torch.nn.functional as F


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
