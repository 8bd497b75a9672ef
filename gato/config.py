"""Model configuration: one dataclass, one documented field per option, and the named sizes.

The three paper sizes follow the paper's Table 5 exactly (spec section 6); `debug` and `tiny` are
for machines without accelerators. Checkpoints store the config as JSON (`to_dict` / `from_dict`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from gato.tokenizer import PATCH_SIZE, VOCAB_SIZE


@dataclass
class GatoConfig:
    # --- decoder (Table 5) ---
    n_layer: int = 8
    """Number of transformer blocks."""
    n_head: int = 24
    """Attention heads per block."""
    d_model: int = 768
    """Residual stream width (the paper's "layer width")."""
    d_ff: int = 3072
    """Hidden width of the GELU feed-forward layer."""
    d_head: int = 32
    """Key/value size per head. The attention inner width is n_head * d_head, which need not
    equal d_model: an output projection maps it back."""
    block_size: int = 1024
    """Context length L of training sequences, and the attention span of the deployment memory."""
    # --- vocabulary and embeddings ---
    vocab_size: int = VOCAB_SIZE
    """Token ids the model reads and predicts (text, discrete, continuous bins, separator)."""
    vocab_multiple: int = 64
    """The embedding table is padded to a multiple of this for fast matmuls; padded rows are
    never targets and their logits are never returned."""
    max_local_positions: int = 512
    """Entries of the learned local (within-timestep) position table: a timestep (observation,
    '|', action) may hold at most this many tokens. A larger local position is an error in the
    model, and gato.layout_check refuses such a task before a run starts (never a clamp)."""
    bin_embedding_init: str = "normal"
    """Initial rows of the 1024 continuous-value bins in the (tied) token table: "normal" draws
    each row independently (N(0, 0.02), like every other token); "fourier" starts bin b as
    sin/cos features of its value at geometric frequencies, so neighbouring bins start close
    and the tied output layer scores neighbouring bins alike [decision: the paper gives no
    initialisation]. The table is learned either way."""
    patch_size: int = PATCH_SIZE
    """Side of the square image patches, in pixels."""
    image_channels: int = 3
    """Channels of the image patches (3 for RGB)."""
    patch_channels: int = 32
    """Channels of the per-patch ResNet block; a multiple of 32 (GroupNorm with 32 groups)."""
    patch_position_bins: int = 128
    """Bins of the learned row and column patch position tables."""
    # --- regularisation and positions ---
    dropout: float = 0.0
    """Dropout on embeddings, attention weights and residual branches (0.1 when fine-tuning)."""
    rope_base: float = 10000.0
    """Base of the rotary position encoding's geometric frequency ladder."""

    def __post_init__(self):
        if self.patch_channels % 32:
            raise ValueError(f"patch_channels must be a multiple of 32, got {self.patch_channels}")
        if self.d_head % 2:
            raise ValueError(f"d_head must be even for rotary encodings, got {self.d_head}")
        if min(self.n_layer, self.n_head, self.d_model, self.d_ff, self.block_size) < 1:
            raise ValueError("n_layer, n_head, d_model, d_ff and block_size must be positive")
        if self.bin_embedding_init not in ("normal", "fourier"):
            raise ValueError(
                f'bin_embedding_init must be "normal" or "fourier", got {self.bin_embedding_init!r}'
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def padded_vocab_size(self) -> int:
        """Rows of the embedding table: vocab_size rounded up to a multiple of vocab_multiple."""
        m = self.vocab_multiple
        return (self.vocab_size + m - 1) // m * m

    @property
    def attn_dim(self) -> int:
        """Inner width of attention, n_head * d_head."""
        return self.n_head * self.d_head

    def to_dict(self) -> dict:
        """Plain JSON-able data."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> GatoConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error (a typo must not pass)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown GatoConfig fields: {unknown}")
        return cls(**data)


SIZES: dict[str, GatoConfig] = {
    # Local positions and contexts of debug and small: the default suite's longest timestep is
    # a BabyAI one (148 discrete values, a mission of up to ~9 tokens, '|', the action: ~159
    # tokens), so 256 local positions hold it with room for longer missions, and the contexts
    # hold 3 (debug) and 6 (small) such timesteps (gato/layout_check.py checks every run).
    # Trains in seconds on a CPU: for tests and smoke runs (which pass a short --seq-len).
    "debug": GatoConfig(
        n_layer=2,
        n_head=4,
        d_model=64,
        d_ff=256,
        d_head=16,
        block_size=512,
        max_local_positions=256,
    ),
    # Four narrow layers (~0.8M in the decoder, 4.2M in the tied token table): the size whose
    # multi-task pretraining fits in an hour on two CPU cores (experiments/results/cpu-proof.md).
    "small": GatoConfig(
        n_layer=4,
        n_head=4,
        d_model=128,
        d_ff=512,
        d_head=32,
        block_size=1024,
        max_local_positions=256,
    ),
    # A few M parameters in the decoder (the tied 33k-token table adds ~8.5M): CPU experiments.
    "tiny": GatoConfig(n_layer=4, n_head=4, d_model=256, d_ff=1024, d_head=64, block_size=512),
    # The paper's Table 5.
    "79M": GatoConfig(n_layer=8, n_head=24, d_model=768, d_ff=3072, d_head=32),
    "364M": GatoConfig(n_layer=12, n_head=12, d_model=1536, d_ff=6144, d_head=128),
    "1.18B": GatoConfig(n_layer=24, n_head=16, d_model=2048, d_ff=8192, d_head=128),
}


def get_config(name: str, **overrides) -> GatoConfig:
    """A fresh copy of the named size, with fields overridden (e.g. dropout=0.1)."""
    if name not in SIZES:
        raise ValueError(f"unknown model size {name!r}; choose from {sorted(SIZES)}")
    return dataclasses.replace(SIZES[name], **overrides)
