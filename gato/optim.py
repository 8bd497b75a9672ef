"""The optimizer and learning-rate schedule of pretraining (GATO_SPEC.md section 8).

AdamW (beta1 0.9, beta2 0.95, eps 1e-8), weight decay 0.1 on matrices only; the learning rate is
warmed up linearly from 1e-7 to the peak, then cosine-decayed to peak * min_lr_ratio (10x lower),
then held constant. The schedule is a pure function of the step, so a resumed run needs to store
nothing but the step to continue it exactly.

Which parameters are "matrices" [decision]: every weight with two or more dimensions that
multiplies an activation (linear layers, the patch ResNet's convolution kernels) and the tied
token table `embed.wte.weight`, because it *is* the output layer's matrix (every row gets a
gradient at every target through the softmax, like any linear layer; GPT-2 and nanoGPT decay it
too). Not decayed: biases, norm gains, and the pure lookup tables (local positions, patch rows
and columns), whose rows only get a gradient when that position occurs, so decay would steadily
erase the rarely seen positions.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

WARMUP_START_LR = 1e-7
"""The learning rate at step 0 (the paper's warm-up starts from 1e-7)."""
TIED_OUTPUT = "embed.wte.weight"
"""The token table that doubles as the output layer (decayed as a matrix, see above)."""


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups: {decayed matrices} and {biases, norms, lookup tables} without decay.

    Names come from `named_modules`, so a wrapped model (DDP, FSDP2, torch.compile) works the same
    as long as the wrapper keeps the parameter objects (all three do)."""
    lookup_only: set[int] = set()
    for name, module in model.named_modules():
        if isinstance(module, nn.Embedding) and not _endswith(name + ".weight", TIED_OUTPUT):
            lookup_only.add(id(module.weight))
    decay, no_decay, seen = [], [], set()
    for _, p in model.named_parameters():
        if not p.requires_grad or id(p) in seen:  # tied parameters appear once
            continue
        seen.add(id(p))
        (decay if p.ndim >= 2 and id(p) not in lookup_only else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def _endswith(name: str, suffix: str) -> bool:
    """`name` is `suffix` or ends with `.suffix` (wrappers add prefixes like `module.`)."""
    return name == suffix or name.endswith("." + suffix)


def build_optimizer(
    model: nn.Module, lr: float, weight_decay: float, fused: bool = False
) -> torch.optim.AdamW:
    """AdamW with the paper's betas and eps; `fused` is the single-kernel CUDA implementation."""
    return torch.optim.AdamW(
        param_groups(model, weight_decay),
        lr=lr,
        betas=(0.9, 0.95),
        eps=1e-8,
        fused=fused or None,
    )


def lr_at(step: int, peak: float, warmup: int, decay: int, min_ratio: float = 0.1) -> float:
    """Learning rate at optimizer step `step` (0-based).

    Steps [0, warmup): linear from 1e-7 to `peak` (reached at step `warmup`); then `decay` steps
    of cosine from `peak` to `peak * min_ratio`; constant `peak * min_ratio` after that."""
    if step < warmup:
        return WARMUP_START_LR + (peak - WARMUP_START_LR) * step / warmup
    floor = peak * min_ratio
    if decay <= 0 or step >= warmup + decay:
        return floor
    progress = (step - warmup) / decay
    return floor + (peak - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
