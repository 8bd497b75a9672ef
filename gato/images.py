"""Images a user gives a model (gato.generate, gato.evaluate_language): read, sized as training.

Images are patched in 16x16 pieces (spec section 2), so a model reads images whose sides are
multiples of 16. The fitting itself is training's (spec section 12 [decision], gato/vl/images.py):
scaled, aspect kept, until the long side is the target side, then padded black and centred.
Which side: the one training used for such an image (:func:`image_size_for`): a generated scene
is drawn at 64x64 (gato.vl.scenes.IMAGE_SIZE) and read as it is; any other image is fitted to
128x128 (gato.vl.images.NATURAL_IMAGE_SIZE), as the hub's and users' photos are in training.

    image = load_image("photo.jpg")                 # (H, W, 3) uint8
    size = image_size_for(image)                    # 128 (64 for a 64x64 scene)
    fitted = resize_and_pad(image, size)            # (128, 128, 3) uint8, 64 patches
"""

from __future__ import annotations

import os

import numpy as np

from gato.errors import UserError
from gato.tokenizer import PATCH_SIZE
from gato.vl.images import NATURAL_IMAGE_SIZE, fit_image
from gato.vl.scenes import IMAGE_SIZE as SCENE_IMAGE_SIZE

TRAINED_SIZES = (SCENE_IMAGE_SIZE, NATURAL_IMAGE_SIZE)
"""Square sizes training reads images at as they are (generated scenes, fitted photos)."""


class ImageError(ValueError, UserError):
    """An image file that is missing or cannot be read as an image."""


def check_image_size(size: int) -> int:
    """`size` as an int, or a ValueError unless it is a positive multiple of 16."""
    if isinstance(size, bool) or int(size) != size or size < PATCH_SIZE or size % PATCH_SIZE:
        raise ValueError(f"an image size must be a positive multiple of {PATCH_SIZE}, got {size}")
    return int(size)


def image_size_for(image: np.ndarray, size: int | None = None) -> int:
    """The side a model reads `image` at: `size` if given, else the image's own side if it is a
    square of a size training uses as is (TRAINED_SIZES), else NATURAL_IMAGE_SIZE."""
    if size is not None:
        return check_image_size(size)
    height, width = np.shape(image)[:2]
    return height if height == width and height in TRAINED_SIZES else NATURAL_IMAGE_SIZE


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
    (as gato.vl.images.fit_image rounds it)."""
    scale = size / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def resize_and_pad(image: np.ndarray, size: int) -> np.ndarray:
    """(H, W), (H, W, 1|3|4) uint8 -> (size, size, 3) uint8 RGB: training's fitting
    (gato.vl.images.fit_image: bicubic, aspect kept, centred on black). An image already
    `size` x `size` is returned as it is."""
    return fit_image(np.asarray(image), check_image_size(size))


def describe_fit(height: int, width: int, size: int) -> str:
    """One line saying what :func:`resize_and_pad` does to an image of that size."""
    h, w = fitted_shape(height, width, size)
    pad = "" if (h, w) == (size, size) else f", padded with black to {size}x{size}"
    return f"resized {width}x{height} to {w}x{h} (aspect kept){pad}"
