"""Gato's value tokenizer: continuous, discrete, image and text values to token ids.

Pure numpy and vectorized (no torch), so it runs in data-loader workers and is cheap enough never
to starve an accelerator. The vocabulary (spec section 1):

    [0, 32000)       text (SentencePiece) and discrete values [0, 1024), told apart by context
    [32000, 33024)   continuous values: 1024 uniform bins over [-1, 1]
    33024            the separator '|' between a timestep's observation and its action
"""

from __future__ import annotations

import numpy as np

TEXT_VOCAB_SIZE = 32000
NUM_BINS = 1024
CONTINUOUS_OFFSET = 32000
SEPARATOR = 33024
VOCAB_SIZE = 33025
MU = 100
M = 256
PATCH_SIZE = 16
# Each pixel goes to [-1, 1] and is then divided by sqrt(patch size) = 4 (spec section 2).
PIXEL_DIVISOR = 4.0

_LOG_DENOM = float(np.log(M * MU + 1.0))
_BIN_WIDTH = 2.0 / NUM_BINS
# uint8 -> scaled float32, one table lookup per pixel instead of three arithmetic passes.
_PIXEL_LUT = ((np.arange(256, dtype=np.float64) / 255.0 * 2.0 - 1.0) / PIXEL_DIVISOR).astype(
    np.float32
)


def _float_array(x) -> np.ndarray:
    """As a float array, keeping float64 inputs exact and everything else in float32."""
    x = np.asarray(x)
    if x.dtype == np.float64 or x.dtype == np.float32:
        return x
    if x.dtype.kind in "biuf":
        return x.astype(np.float32)
    raise ValueError(f"expected a numeric array, got dtype {x.dtype}")


def mu_law_encode(x) -> np.ndarray:
    """F(x) = sign(x) * log(|x| * mu + 1) / log(M * mu + 1); |x| = M maps to 1."""
    x = _float_array(x)
    return _mu_law_into(x, np.empty(x.shape, x.dtype))


def _mu_law_into(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """mu-law of `x` written into `out` (which may be wider than `x`), one temporary in all."""
    np.abs(x, out=out)
    out *= MU
    np.log1p(out, out=out)
    out *= 1.0 / _LOG_DENOM
    return np.copysign(out, x, out=out)


def mu_law_decode(y) -> np.ndarray:
    """Inverse of :func:`mu_law_encode`: sign(y) * ((M * mu + 1) ** |y| - 1) / mu."""
    y = _float_array(y)
    x = np.abs(y)
    x *= _LOG_DENOM
    np.expm1(x, out=x)
    x *= 1.0 / MU
    return np.copysign(x, y, out=x)


def tokenize_continuous(x, mu_law: bool, name: str = "value") -> np.ndarray:
    """Continuous values -> int64 tokens in [32000, 33024), flattened row-major.

    Observations are mu-law companded first (``mu_law=True``); actions, already in [-1, 1], are
    not. Values are clipped to [-1, 1] (so +/-inf saturate to the edge bins) and binned uniformly,
    with 1.0 going to the last bin, computed in float64 for every input dtype (float32 inputs
    give exactly the tokens of the same values as float64). NaN raises ``ValueError`` naming
    ``name``.
    """
    x = _float_array(x).reshape(-1)
    # Always in float64, whatever the input: widening float32 is exact, so a float32 input bins
    # exactly as the same values in float64. In float32 the rounding of log1p and of y + 1 moves
    # about 1 value in 25,000 across a bin edge, and any |y| < 3e-8 (e.g. x = -3e-9) rounds
    # y + 1 to 1.0: bin 512 instead of 511.
    y = np.empty(x.shape, np.float64)
    if mu_law:
        _mu_law_into(x, y)
    else:
        y[...] = x
    # bin = floor((y + 1) / 2 * NUM_BINS), computed in place on the one temporary.
    y += 1.0
    y *= NUM_BINS / 2.0
    # NaN survives every step above, and clip would hide nothing: check once, here.
    if np.isnan(y).any():
        raise ValueError(f"{name}: NaN in continuous values (at flat index {_first_nan(y)})")
    np.clip(y, 0.0, NUM_BINS - 1.0, out=y)
    tokens = y.astype(np.int64)  # truncation == floor for non-negative values
    tokens += CONTINUOUS_OFFSET
    return tokens


def _first_nan(y: np.ndarray) -> int:
    return int(np.flatnonzero(np.isnan(y))[0])


def detokenize_continuous(tokens, mu_law: bool) -> np.ndarray:
    """Tokens in [32000, 33024) -> float32 values at bin centres (mu-law inverted if asked)."""
    tokens = np.asarray(tokens)
    if tokens.dtype.kind not in "iu":
        raise ValueError(f"continuous tokens must be integers, got dtype {tokens.dtype}")
    bins = tokens.astype(np.int64) - CONTINUOUS_OFFSET
    if bins.size and (bins.min() < 0 or bins.max() >= NUM_BINS):
        bad = tokens.reshape(-1)[(bins.reshape(-1) < 0) | (bins.reshape(-1) >= NUM_BINS)][0]
        raise ValueError(
            f"token {int(bad)} is not a continuous token "
            f"[{CONTINUOUS_OFFSET}, {CONTINUOUS_OFFSET + NUM_BINS})"
        )
    centres = (bins.astype(np.float32) + 0.5) * np.float32(_BIN_WIDTH) - np.float32(1.0)
    return mu_law_decode(centres) if mu_law else centres


def tokenize_discrete(x, name: str = "value", n: int = NUM_BINS) -> np.ndarray:
    """Integers in [0, n) (n <= 1024) -> the same integers as int64 tokens, flattened row-major.

    Floats are accepted only when every value is a whole number; anything else raises
    ``ValueError`` naming ``name``.
    """
    if not 0 < n <= NUM_BINS:
        raise ValueError(f"{name}: discrete size must be in [1, {NUM_BINS}], got {n}")
    x = np.asarray(x)
    if x.dtype.kind == "b":
        x = x.astype(np.int64)
    elif x.dtype.kind == "f":
        flat = x.reshape(-1)
        not_whole = ~np.isfinite(flat) | (flat != np.round(flat))
        if not_whole.any():
            raise ValueError(
                f"{name}: discrete values must be integers, got {flat[not_whole][0]!r}"
            )
    elif x.dtype.kind not in "iu":
        raise ValueError(f"{name}: discrete values must be integers, got dtype {x.dtype}")
    tokens = x.astype(np.int64).reshape(-1)
    if tokens.size and (tokens.min() < 0 or tokens.max() >= n):
        bad = tokens[(tokens < 0) | (tokens >= n)][0]
        raise ValueError(f"{name}: discrete value {int(bad)} is outside [0, {n})")
    return tokens


def image_to_patches(image_uint8_hwc) -> np.ndarray:
    """A uint8 image (H, W, C) -> float32 patches (H/16 * W/16, 16, 16, C) in raster order.

    Pixels are scaled to [-1, 1] and divided by 4. A leading batch axis is allowed: (N, H, W, C)
    gives (N, num_patches, 16, 16, C). A 2-D array is a single-channel (H, W) image.
    """
    img = np.asarray(image_uint8_hwc)
    if img.dtype != np.uint8:
        raise ValueError(f"images must be uint8, got dtype {img.dtype}")
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim not in (3, 4):
        raise ValueError(f"expected an image (H, W, C) or a stack (N, H, W, C), got {img.shape}")
    *lead, h, w, c = img.shape
    if h % PATCH_SIZE or w % PATCH_SIZE or h == 0 or w == 0:
        raise ValueError(
            f"image height and width must be positive multiples of {PATCH_SIZE}, got {h}x{w}: "
            "resize frames before tokenizing"
        )
    p = PATCH_SIZE
    grid = img.reshape(*lead, h // p, p, w // p, p, c)
    n = len(lead)  # move the patch-column axis in front of the in-patch row axis
    grid = grid.transpose(*range(n), n, n + 2, n + 1, n + 3, n + 4)
    return _PIXEL_LUT[grid.reshape(*lead, (h // p) * (w // p), p, p, c)]


def patch_intervals(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Normalized [start, end) row and column intervals of each patch, raster order, (P, 2) each."""
    rows, cols = height // PATCH_SIZE, width // PATCH_SIZE
    r = np.arange(rows, dtype=np.float32)
    c = np.arange(cols, dtype=np.float32)
    row_iv = np.stack([r / rows, (r + 1) / rows], axis=-1)  # (rows, 2)
    col_iv = np.stack([c / cols, (c + 1) / cols], axis=-1)  # (cols, 2)
    return np.repeat(row_iv, cols, axis=0), np.tile(col_iv, (rows, 1))


def tokenize_text(text: str) -> np.ndarray:
    """English text -> int64 SentencePiece ids in [0, 32000), with the project's default model."""
    from gato.text import get_text_tokenizer

    return get_text_tokenizer().encode(text)


def detokenize_text(tokens) -> str:
    """SentencePiece ids -> text, with the project's default model."""
    from gato.text import get_text_tokenizer

    return get_text_tokenizer().decode(tokens)
