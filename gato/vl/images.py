"""Images of vision-language examples -> RGB uint8 arrays whose sides are multiples of 16.

GATO_SPEC.md section 12 [decision]: an image is resized with its aspect ratio kept so that its
longer side is the target side, then padded (black, centred) to the target square. Nothing is
cropped. Generated scenes are drawn at 64x64 already (gato/vl/scenes.py); images of the hub and of
user folders are fitted to ``NATURAL_IMAGE_SIZE`` = 128 (64 patches: five pairs are 320 patches
plus their texts, within a 512- or 1024-token context, while a 352-px Conceptual Captions photo
keeps more detail than at 64).
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping

import numpy as np

from gato.tokenizer import PATCH_SIZE

NATURAL_IMAGE_SIZE = 128


def to_rgb_array(value) -> np.ndarray:
    """A PIL image, an image struct ({"bytes", "path"}), encoded bytes, a file path or an array
    (H, W), (H, W, 1|3|4) -> (H, W, 3) uint8."""
    from PIL import Image

    if isinstance(value, Mapping):
        if value.get("bytes") is not None:
            value = value["bytes"]
        elif value.get("path"):
            value = value["path"]
        else:
            raise ValueError("an image struct with neither bytes nor path")
    if isinstance(value, bytes | bytearray):
        value = Image.open(io.BytesIO(value))
    elif isinstance(value, str | os.PathLike):
        value = Image.open(value)
    if isinstance(value, Image.Image):
        return np.asarray(value.convert("RGB"))
    arr = np.asarray(value)
    if arr.dtype != np.uint8:
        raise ValueError(f"image arrays must be uint8, got {arr.dtype}")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise ValueError(f"expected an (H, W[, 1|3|4]) image, got shape {arr.shape}")
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return arr[:, :, :3]


def fit_image(value, size: int | tuple[int, int] = NATURAL_IMAGE_SIZE) -> np.ndarray:
    """Resize (aspect kept, bicubic) and pad to `size` = side or (height, width), both multiples
    of 16 -> (height, width, 3) uint8. An image already of that size is returned unchanged."""
    from PIL import Image

    height, width = (size, size) if isinstance(size, int) else size
    if height <= 0 or width <= 0 or height % PATCH_SIZE or width % PATCH_SIZE:
        raise ValueError(f"the image size must be positive multiples of {PATCH_SIZE}, got {size}")
    arr = to_rgb_array(value)
    h, w = arr.shape[:2]
    if (h, w) == (height, width):
        return arr
    if h == 0 or w == 0:
        raise ValueError(f"an empty image of shape {arr.shape}")
    scale = min(height / h, width / w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    resized = np.asarray(Image.fromarray(arr).resize((new_w, new_h), Image.BICUBIC))
    out = np.zeros((height, width, 3), np.uint8)
    top, left = (height - new_h) // 2, (width - new_w) // 2
    out[top : top + new_h, left : left + new_w] = resized
    return out
