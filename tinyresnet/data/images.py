"""Reading image files (PNG, JPEG, ...) into arrays with Pillow."""

import os

import numpy as np

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def is_image_file(path):
    return os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS


def read_image(path, size=None, channels=3):
    """Read one image file as a uint8 array of shape (C, H, W).

    ``channels`` is 1 (greyscale, Pillow mode "L") or 3 (RGB); ``size`` is ``(H, W)`` to resize to,
    or None to keep the file's size. Shrinking averages each output pixel's area (a box filter, the
    way the digits' 8×8 values were made from 32×32 bitmaps); enlarging is bilinear.
    A missing, corrupt or truncated file raises an error that names it.
    """
    from PIL import Image, UnidentifiedImageError

    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (greyscale) or 3 (RGB), got {channels}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such image file: {path}")
    try:
        with Image.open(path) as img:
            img = img.convert("L" if channels == 1 else "RGB")   # decodes the whole file
            if size is not None and (img.height, img.width) != tuple(size):
                shrink = img.height >= size[0] and img.width >= size[1]
                img = img.resize((int(size[1]), int(size[0])),
                                 Image.Resampling.BOX if shrink else Image.Resampling.BILINEAR)
            pixels = np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ValueError(f"{path}: not a readable image (corrupt or truncated?): {e}") from e
    if channels == 1:
        return pixels[None, :, :]                 # (H, W) -> (1, H, W)
    return pixels.transpose(2, 0, 1).copy()       # (H, W, 3) -> (3, H, W)
