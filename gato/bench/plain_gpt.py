"""A plain GPT of Gato's dimensions: the baseline of the model benchmark.

Learned absolute positions, a tied output layer computed at every position (full-vocabulary
logits), masked cross-entropy over them, no Gato embeddings (no patches, no local positions, no
rotary). The same n_layer / n_head / d_head / d_model / d_ff / vocabulary as the Gato it is
compared with, so any throughput gap is Gato's embedding and loss machinery.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from gato.config import GatoConfig


class PlainBlock(nn.Module):
    def __init__(self, cfg: GatoConfig):
        super().__init__()
        self.n_head, self.d_head = cfg.n_head, cfg.d_head
        self.ln_1 = nn.LayerNorm(cfg.d_model)
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.attn_dim)
        self.proj = nn.Linear(cfg.attn_dim, cfg.d_model)
        self.ln_2 = nn.LayerNorm(cfg.d_model)
        self.fc = nn.Linear(cfg.d_model, cfg.d_ff)
        self.out = nn.Linear(cfg.d_ff, cfg.d_model)

    def forward(self, x):
        b, t, _ = x.shape
        qkv = self.qkv(self.ln_1(x)).view(b, t, 3, self.n_head, self.d_head)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, H, T, D)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, T, D)
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, -1))
        return x + self.out(F.gelu(self.fc(self.ln_2(x))))


class PlainGPT(nn.Module):
    def __init__(self, cfg: GatoConfig):
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.padded_vocab_size, cfg.d_model)
        self.wpe = nn.Embedding(cfg.block_size, cfg.d_model)
        self.blocks = nn.ModuleList(PlainBlock(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02)

    def forward(self, tokens, targets=None, target_mask=None):
        t = tokens.shape[1]
        x = self.wte(tokens) + self.wpe(torch.arange(t, device=tokens.device))  # (B, T, C)
        for block in self.blocks:
            x = block(x)
        logits = F.linear(self.ln_f(x), self.wte.weight)  # (B, T, V_padded) at every position
        if targets is None:
            return logits, None
        labels = targets.masked_fill(~target_mask, -100)  # mean over masked targets only
        return logits, F.cross_entropy(logits.flatten(0, 1), labels.flatten())
