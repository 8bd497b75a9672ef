"""Images for the vision-language half: read a file, fit it to the size a model reads.

Images are patched in 16x16 pieces (spec section 2), so a model reads images whose sides are
multiples of 16. :func:`resize_and_pad` fits any image into a `size` x `size` square (a multiple of
16) the way spec section 12 decides: scaled with its aspect ratio kept until its long side is
`size`, then padded with black, centred, on the short side. :func:`load_image` reads a file as
RGB uint8 (H, W, 3), any failure a UserError naming the file.

    image = load_image("photo.jpg")          # (H, W, 3) uint8
    fitted = resize_and_pad(image, 80)       # (80, 80, 3) uint8, 25 patches
"""

from __future__ import annotations

import os

import numpy as np

from gato.errors import UserError
from gato.tokenizer import PATCH_SIZE

DEFAULT_IMAGE_SIZE = 80
"""The side of the square images a model reads when its checkpoint records no size: spec section
2's default frame (80 x 80 = 25 patches per image)."""


class ImageError(ValueError, UserError):
    """An image file that is missing or cannot be read as an image."""


def check_image_size(size: int) -> int:
    """`size` as an int, or a ValueError unless it is a positive multiple of 16."""
    if isinstance(size, bool) or int(size) != size or size < PATCH_SIZE or size % PATCH_SIZE:
        raise ValueError(f"an image size must be a positive multiple of {PATCH_SIZE}, got {size}")
    return int(size)


def load_image(path: str | os.PathLike) -> np.ndarray:
    """The image in `path` as RGB uint8 (H, W, 3) (grayscale, palette and alpha converted; an
    alpha channel is dropped). An ImageError (a UserError) names the file if it is missing, is
    a folder, or is not an image Pillow can decode."""
    from PIL import Image, UnidentifiedImageError

    if not os.path.exists(path):
        raise ImageError(f"image {path} does not exist")
    if os.path.isdir(path):
        raise ImageError(f"image {path} is a folder, not an image file")
    try:
        with Image.open(path) as img:
            img.load()  # decode now: a truncated file fails here, not later
            rgb = img.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise ImageError(f"image {path} cannot be read as an image ({e})") from e
    array = np.asarray(rgb, np.uint8)
    if array.ndim != 3 or 0 in array.shape:
        raise ImageError(f"image {path} has no pixels (shape {array.shape})")
    return array


def fitted_shape(height: int, width: int, size: int) -> tuple[int, int]:
    """(h, w) of an image of `height` x `width` scaled, aspect kept, so its long side is `size`
    (the short side rounded, and at least 1 pixel)."""
    scale = size / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def resize_and_pad(image: np.ndarray, size: int) -> np.ndarray:
    """(H, W, C) or (H, W) uint8 -> (size, size, C) uint8 (C = 1 for a 2-D image).

    Scaled with bicubic resampling (Pillow; antialiased when shrinking) so the long side is
    `size`, aspect kept, then centred on black: the padding is split evenly, the odd pixel going
    below / to the right. An image already `size` x `size` is returned unchanged (a copy)."""
    from PIL import Image

    size = check_image_size(size)
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise ValueError(f"images must be uint8, got dtype {array.dtype}")
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or 0 in array.shape:
        raise ValueError(f"expected an (H, W, C) image, got shape {array.shape}")
    height, width, channels = array.shape
    if (height, width) == (size, size):
        return array.copy()
    h, w = fitted_shape(height, width, size)
    planes = [
        np.asarray(Image.fromarray(array[:, :, c]).resize((w, h), Image.Resampling.BICUBIC))
        for c in range(channels)  # one channel at a time: any channel count, same filter
    ]
    scaled = np.stack(planes, axis=-1)  # (h, w, C)
    out = np.zeros((size, size, channels), np.uint8)
    top, left = (size - h) // 2, (size - w) // 2
    out[top : top + h, left : left + w] = scaled
    return out


def describe_fit(height: int, width: int, size: int) -> str:
    """One line saying what :func:`resize_and_pad` does to an image of that size."""
    h, w = fitted_shape(height, width, size)
    pad = "" if (h, w) == (size, size) else f", padded with black to {size}x{size}"
    return f"resized {width}x{height} to {w}x{h} (aspect kept){pad}"
