"""Sampling primitives shared by acting (gato/policy.py) and text generation
(gato/text_generator.py): a token from a valid id range, and the uncached sliding-memory
forward that the KV cache must equal.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from gato.sequence import concatenate


def sample_tokens(
    logits: torch.Tensor,
    lo: int,
    hi: int,
    greedy: bool = False,
    temperature: float = 1.0,
    generators: Sequence[torch.Generator | None] | None = None,
) -> list[int]:
    """One token id in [lo, hi) per row of (b, V) logits, row i drawn with generators[i].

    Only the [lo, hi) slice takes part, so an invalid token can never be drawn whatever the
    logits are. Probabilities are computed in float64 (tiny ones stay exact). temperature <= 0
    means greedy."""
    if not 0 <= lo < hi <= logits.shape[-1]:
        raise ValueError(f"token range [{lo}, {hi}) is outside a vocabulary of {logits.shape[-1]}")
    valid = logits[:, lo:hi].to(torch.float64)  # (b, hi - lo)
    if greedy or temperature <= 0:
        return (torch.argmax(valid, dim=-1) + lo).tolist()
    probs = torch.softmax(valid / temperature, dim=-1).cpu()  # the generators live on the CPU
    gens = list(generators) if generators is not None else [None] * len(probs)
    if len(gens) != len(probs):
        raise ValueError(f"{len(probs)} rows of logits but {len(gens)} generators")
    return [
        lo + int(torch.multinomial(p, 1, generator=g)) for p, g in zip(probs, gens, strict=True)
    ]


def sample_token(
    logits: torch.Tensor,
    lo: int,
    hi: int,
    greedy: bool = False,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> int:
    """One token id in [lo, hi) from a (V,) row of logits (see :func:`sample_tokens`)."""
    return sample_tokens(logits[None], lo, hi, greedy, temperature, [generator])[0]


def recompute_last_logits(model, stream, piece, context_tokens: int, inputs_fn, vocab=None):
    """The uncached path of the sliding memory: (the new stream, the (V,) logits of its last
    position, of the ids [lo, hi) of `vocab` if given), recomputed by a banded-causal forward
    over the memory's whole receptive field, `n_layer * (context_tokens - 1) + 1` tokens (older
    ones cannot reach the next logits)."""
    receptive_field = model.config.n_layer * (context_tokens - 1) + 1
    stream = concatenate([stream, piece])
    if len(stream) > receptive_field:
        stream = stream.window(len(stream) - receptive_field, len(stream))
    window = context_tokens if len(stream) > context_tokens else None
    logits, _ = model(inputs_fn([stream]), last_only=True, attn_window=window, vocab=vocab)
    return stream, logits[0]
