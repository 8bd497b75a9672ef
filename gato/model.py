"""Gato: a decoder-only transformer over the embedded token stream (spec sections 4-6).

Read with gato/embedding.py (what the decoder reads) and gato/kv_cache.py (deployment memory).
Pre-norm blocks with LayerNorm, GELU feed-forward, causal attention with rotary position
encodings (relative, so deployment can slide a memory longer than the training window), and an
output layer tied to the token embedding table.

    model = Gato(get_config("debug"))
    inputs = GatoInputs.from_sequences(seqs)
    logits, loss = model(inputs, *inputs.next_token_targets())  # logits at targets only
    logits, _ = model(inputs)  # (B, T, vocab_size)
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from gato.config import GatoConfig
from gato.embedding import GatoEmbedding
from gato.inputs import GatoInputs, packed_windows
from gato.kv_cache import KVCache
from gato.tokenizer import CONTINUOUS_OFFSET, NUM_BINS


def rotary_cos_sin(positions: torch.Tensor, d_head: int, base: float, dtype: torch.dtype):
    """cos and sin tables (..., T, d_head / 2) for absolute `positions` (..., T).

    Angles are computed in float64: at positions in the thousands a float32 angle loses ~1e-4
    rad, which would make the cached path (large absolute positions) drift from a recompute.
    """
    exponent = torch.arange(0, d_head, 2, device=positions.device, dtype=torch.float64) / d_head
    inv_freq = base**-exponent  # (D/2,)
    angles = positions.to(torch.float64)[..., None] * inv_freq  # (..., T, D/2)
    return angles.cos().to(dtype), angles.sin().to(dtype)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate (..., T, D) by each position's angles: dimension i pairs with i + D/2."""
    x1, x2 = x.chunk(2, dim=-1)  # (..., T, D/2) each
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


def fourier_bin_embeddings(width: int, std: float = 0.02) -> torch.Tensor:
    """(NUM_BINS, width) rows: sin and cos of each bin centre's value x in [-1, 1] at width / 2
    geometric frequencies from 1 to NUM_BINS rad per unit. The low frequencies make nearby bins
    similar (the kernel row_a . row_b decays smoothly with |x_a - x_b|), the highest one still
    tells bins a few apart; entries have the RMS `std` of the other rows' normal init."""
    x = (torch.arange(NUM_BINS, dtype=torch.float64) + 0.5) * (2.0 / NUM_BINS) - 1.0  # (NUM_BINS,)
    freqs = torch.logspace(0.0, math.log10(NUM_BINS), (width + 1) // 2, dtype=torch.float64)
    angles = x[:, None] * freqs[None, :]  # (NUM_BINS, width / 2)
    rows = torch.cat([angles.sin(), angles.cos()], dim=1)[:, :width]  # (NUM_BINS, width)
    return (rows * std * math.sqrt(2.0)).to(torch.float32)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GatoConfig):
        super().__init__()
        self.n_head, self.d_head = config.n_head, config.d_head
        self.qkv = nn.Linear(config.d_model, 3 * config.attn_dim)
        self.proj = nn.Linear(config.attn_dim, config.d_model)  # inner width -> residual width
        self.proj.is_residual_output = True  # scaled init, see Gato._init_weights
        self.dropout = config.dropout
        self.resid_drop = nn.Dropout(config.dropout)

    def forward(self, x, cos, sin, mask=None, cache: KVCache | None = None, layer: int = 0):
        b, t, _ = x.shape
        qkv = self.qkv(x).view(b, t, 3, self.n_head, self.d_head)
        qkv = qkv.permute(2, 0, 3, 1, 4)  # (3, B, H, T, D)
        q, k = apply_rotary(qkv[:2], cos, sin)  # queries and keys rotated in one pass
        v = qkv[2]
        if cache is not None:
            k, v = cache.update(layer, k, v)  # (B, H, S, D) rotated keys, this chunk included
            q = q.to(k.dtype)  # the cache's dtype rules (e.g. a bf16 cache under autocast)
        p = self.dropout if self.training else 0.0
        # Plain causal attention takes SDPA's fused path, which never materializes the (T, S)
        # scores: training, and a cache's first chunk (a prompt prefill of N rows at once).
        causal = cache.causal if cache is not None else mask is None
        if causal:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        else:  # cached chunk or banded reference: explicit mask (None: all visible)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        y = y.transpose(1, 2).reshape(b, t, self.n_head * self.d_head).to(x.dtype)  # (B, T, H*D)
        return self.resid_drop(self.proj(y))  # (B, T, C)


class MLP(nn.Module):
    def __init__(self, config: GatoConfig):
        super().__init__()
        self.fc = nn.Linear(config.d_model, config.d_ff)
        self.proj = nn.Linear(config.d_ff, config.d_model)
        self.proj.is_residual_output = True
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x):
        return self.drop(self.proj(F.gelu(self.fc(x))))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, config: GatoConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.d_model)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.d_model)
        self.mlp = MLP(config)

    def forward(self, x, cos, sin, mask=None, cache=None, layer=0):
        x = x + self.attn(self.ln_1(x), cos, sin, mask, cache, layer)
        return x + self.mlp(self.ln_2(x))


class Gato(nn.Module):
    def __init__(self, config: GatoConfig):
        super().__init__()
        self.config = config
        self.embed = GatoEmbedding(config)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.d_model)
        # No separate head: the output layer is embed.wte.weight (tied, spec section 5).
        self.apply(self._init_weights)
        if config.bin_embedding_init == "fourier":
            with torch.no_grad():
                rows = slice(CONTINUOUS_OFFSET, CONTINUOUS_OFFSET + NUM_BINS)
                self.embed.wte.weight[rows] = fourier_bin_embeddings(config.d_model)

    def _init_weights(self, module: nn.Module) -> None:
        """GPT-2 init: N(0, 0.02), with residual output projections scaled by 1/sqrt(2 n_layer)
        so the residual stream's variance does not grow with depth. Convolutions keep PyTorch's
        (fan-in) default. A no-op on the meta device."""
        if isinstance(module, nn.Linear):
            std = 0.02
            if getattr(module, "is_residual_output", False):
                std /= math.sqrt(2 * self.config.n_layer)
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(
        self,
        inputs: GatoInputs,
        targets: torch.Tensor | None = None,
        target_mask: torch.Tensor | None = None,
        last_only: bool = False,
        attn_window: int | None = None,
        vocab: tuple[int, int] | None = None,
    ):
        """Returns (logits, loss).

        With `targets` (B, T) and `target_mask` (B, T) bool (see
        :meth:`GatoInputs.next_token_targets`): the output layer runs only at the M positions
        where target_mask is True (same loss as full logits, far less work); logits are (M, V)
        in row-major order of those positions, and loss is the mean cross-entropy over the M
        target tokens of the whole batch (every target weighs the same, whatever its row).
        Without targets: logits (B, T, V), or (B, V) for position T - 1 if `last_only` (rows
        are right-padded: a shorter row's last token is earlier); loss is None.
        V = vocab_size: the embedding table's padding rows are dropped; `vocab=(lo, hi)` (no
        targets) scores only those token ids, V = hi - lo (acting needs only its action range).

        `attn_window`: each query sees only the last `attn_window` keys (a banded causal mask),
        the exact full-sequence equivalent of decoding with a KVCache of that window.
        `inputs.segments` (packed rows): a query sees only keys of its own window; rotary
        positions are relative, so each window computes exactly what it would as a row alone.
        """
        x = self.embed(inputs)  # (B, T, C)
        if inputs.segments is None:
            x = self._blocks(x, attn_window)
        elif attn_window is not None:
            raise ValueError("attn_window applies to unpacked rows only (inputs.segments is set)")
        else:
            x = self._blocks_by_window(x, inputs.segments)
        x = self.ln_f(x)  # (B, T, C)

        if targets is None:
            h = x[:, -1] if last_only else x  # (B, C) or (B, T, C)
            return self._project(h, vocab or (0, self.config.vocab_size)), None
        if target_mask is None:
            raise ValueError("targets need a target_mask (see GatoInputs.next_token_targets)")
        h = x[target_mask]  # (M, C): hidden states of target positions only
        logits = self._project(h)  # (M, V_padded)
        # Padded vocabulary rows must not take probability mass: -inf before the softmax.
        # In place is safe: the linear layer does not keep its output for backward.
        logits[:, self.config.vocab_size :] = float("-inf")
        y = targets[target_mask]  # (M,)
        loss = F.cross_entropy(logits.float(), y, reduction="sum") / max(y.numel(), 1)
        return logits[:, : self.config.vocab_size], loss

    def _blocks(self, x: torch.Tensor, attn_window: int | None = None) -> torch.Tensor:
        """The transformer blocks over (N, T, C) rows, causal (banded with `attn_window`)."""
        t = x.shape[1]
        positions = torch.arange(t, device=x.device)
        cos, sin = rotary_cos_sin(positions, self.config.d_head, self.config.rope_base, x.dtype)
        mask = None
        if attn_window is not None and t > attn_window:
            offset = positions[:, None] - positions[None, :]  # (T, T) query minus key position
            mask = (offset >= 0) & (offset < attn_window)
        for block in self.blocks:
            x = block(x, cos, sin, mask)
        return x

    def _blocks_by_window(self, x: torch.Tensor, segments: torch.Tensor) -> torch.Tensor:
        """Packed rows: every window through the blocks as a row of its own, right-padded, with
        plain causal attention (padding comes after a window's tokens, so none of them sees
        it), in buckets of similar lengths. Exactly the block-diagonal causal mask over the
        packed row, without its (T, T) scores."""
        b, t, c = x.shape
        flat = x.reshape(b * t, c)
        pieces, where = [], []
        for index, valid in packed_windows(segments):  # (n, W) flat positions, (n, W) real
            y = self._blocks(flat[index])  # (n, W, C)
            pieces.append(y[valid])
            where.append(index[valid])
        order = torch.argsort(torch.cat(where))  # every position is in exactly one window
        return torch.cat(pieces)[order].reshape(b, t, c)

    def forward_cached(
        self,
        inputs: GatoInputs,
        cache: KVCache,
        last_only: bool = True,
        lengths: list[int] | None = None,
        rows: list[int] | None = None,
        vocab: tuple[int, int] | None = None,
    ):
        """Feed a chunk of c new tokens per row through the cache; return the logits of each
        row's last real token (b, V), or of every chunk position (b, c, V); with
        `vocab=(lo, hi)` only those token ids (V = hi - lo: an action token's range needs a
        1,024-row slice of the output layer, not all of its 33k rows).

        `lengths[i]`: how many of the (right-padded) chunk's tokens are real in row i (default:
        all c); `rows`: which cache rows the b input rows are (default: all, in order). Call
        under torch.no_grad() / torch.inference_mode(). Each row's rotary positions continue
        from its own position in the cache; see gato/kv_cache.py for what the memory sees."""
        b, c = inputs.tokens.shape
        x = self.embed(inputs)  # (b, c, C)
        positions, mask = cache.prepare(c, lengths, rows)  # (b, c), mask or None
        cos, sin = rotary_cos_sin(positions, self.config.d_head, self.config.rope_base, x.dtype)
        cos, sin = cos[:, None], sin[:, None]  # (b, 1, c, D/2): broadcast over heads
        for i, block in enumerate(self.blocks):
            x = block(x, cos, sin, mask, cache, i)
        cache.advance()
        if last_only:
            last = (
                torch.tensor(lengths, device=x.device) - 1 if lengths else torch.full((b,), c - 1)
            )
            x = x[torch.arange(b, device=x.device), last.to(x.device)]  # (b, C)
        return self._project(self.ln_f(x), vocab or (0, self.config.vocab_size))

    def new_cache(self, batch_size: int, capacity: int | None = None) -> KVCache:
        """An empty KVCache for this model (owned by the caller, not stored here)."""
        return KVCache.for_model(self, batch_size, capacity)

    def _project(self, h: torch.Tensor, vocab: tuple[int, int] | None = None) -> torch.Tensor:
        """Output logits through the tied table: of the ids [lo, hi) of `vocab`, or (None) of
        the whole padded table (training's loss masks the padding rows itself)."""
        weight = self.embed.wte.weight
        if vocab is not None:
            lo, hi = vocab
            if not 0 <= lo < hi <= self.config.vocab_size:
                raise ValueError(
                    f"vocab range [{lo}, {hi}) is outside the {self.config.vocab_size} token ids"
                )
            weight = weight[lo:hi]  # a view: only these rows are read
        return F.linear(h, weight)

    # --- accounting ---

    def num_params(self, non_embedding: bool = False) -> int:
        """Parameter count; non_embedding drops the lookup tables (token, local position, patch
        position), which cost no FLOPs as lookups (the token table's FLOPs as the output layer
        are counted separately in estimate_flops_per_token)."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            e = self.embed
            tables = (e.wte, e.wle, e.patch_positions.rows, e.patch_positions.cols)
            n -= sum(t.weight.numel() for t in tables)
        return n

    def estimate_flops_per_token(self, seq_len: int | None = None) -> float:
        """Training FLOPs per token (forward + backward), PaLM appendix B convention:
        6 * (non-embedding params + output layer) + 12 * n_layer * attn_dim * seq_len.

        Counts the full output layer at every position (the model FLOPs of MFU), although
        training projects only at targets; the patch ResNet's convolutions are counted once per
        weight, not per pixel, so image-heavy batches do slightly more work than this."""
        cfg = self.config
        t = seq_len or cfg.block_size
        n = self.num_params(non_embedding=True) + cfg.padded_vocab_size * cfg.d_model
        return 6.0 * n + 12.0 * cfg.n_layer * cfg.attn_dim * t

    def estimate_mfu(self, tokens_per_sec: float, peak_flops: float, seq_len=None) -> float:
        """Model FLOPs utilisation: achieved training FLOP/s over the hardware's peak FLOP/s."""
        return self.estimate_flops_per_token(seq_len) * tokens_per_sec / peak_flops
