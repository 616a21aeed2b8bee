"""Reading image files (PNG, JPEG, ...) into arrays with Pillow."""

import os
import re
import warnings

import numpy as np

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")     # Pillow's modes for 16-bit greyscale
ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
BACKGROUND = (255, 255, 255)      # what transparent pixels become: white paper


def is_image_file(path):
    return os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS


def read_image(path, size=None, channels=3):
    """Read one image file as a uint8 array of shape (C, H, W).

    ``channels`` is 1 (greyscale, Pillow mode "L") or 3 (RGB); ``size`` is ``(H, W)`` to resize to,
    or None to keep the file's size. Shrinking averages each output pixel's area (a box filter, the
    way the digits' 8×8 values were made from 32×32 bitmaps); enlarging is bilinear.

    16-bit greyscale files (0–65535) are scaled to 0–255, not clipped. Transparent pixels (an alpha
    channel, or a transparent palette entry) are laid over a white background: a drawing of dark
    strokes on a transparent canvas reads as dark strokes on white paper, as it looks in a viewer
    (Pillow alone would turn transparent pixels into their stored colour, usually black).
    A missing, corrupt, truncated or oversized (decompression-bomb) file raises an error that names it.
    """
    from PIL import Image, UnidentifiedImageError

    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (greyscale) or 3 (RGB), got {channels}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such image file: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img = _to_8_bit(img)
                img = img.convert("L" if channels == 1 else "RGB")   # decodes the whole file
                if size is not None and (img.height, img.width) != tuple(size):
                    shrink = img.height >= size[0] and img.width >= size[1]
                    img = img.resize((int(size[1]), int(size[0])),
                                     Image.Resampling.BOX if shrink else Image.Resampling.BILINEAR)
                pixels = np.asarray(img, dtype=np.uint8)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ValueError(_too_large(path, e, Image.MAX_IMAGE_PIXELS)) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ValueError(f"{path}: not a readable image (corrupt or truncated?): {e}") from e
    if channels == 1:
        return pixels[None, :, :]                 # (H, W) -> (1, H, W)
    return pixels.transpose(2, 0, 1).copy()       # (H, W, 3) -> (3, H, W)


def _to_8_bit(img):
    """``img`` as an 8-bit Pillow image with no transparency: 16-bit grey scaled to 0–255, transparent
    pixels laid over ``BACKGROUND``. Other images are returned as they are."""
    from PIL import Image

    if img.mode in SIXTEEN_BIT_MODES:
        values = np.asarray(img, dtype=np.float64)                         # (H, W) in 0–65535
        return Image.fromarray(np.round(np.clip(values, 0, 65535) * (255 / 65535)).astype(np.uint8))
    if img.mode in ALPHA_MODES or "transparency" in img.info:
        rgba = img.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, (*BACKGROUND, 255)), rgba).convert("RGB")
    return img


def _too_large(path, error, limit):
    """The message for an image over Pillow's decompression-bomb limit (``error`` is Pillow's)."""
    found = re.search(r"\((\d+) pixels\)", str(error))
    pixels = f"{int(found.group(1)):,} pixels" if found else "too many pixels"
    return (f"{path}: the image has {pixels}, more than Pillow's safety limit of {limit:,} (a file that large "
            f"may be a decompression bomb). Shrink it to about the size you train at before using it; if you "
            f"trust the file, raise the limit in Python with PIL.Image.MAX_IMAGE_PIXELS = None")
