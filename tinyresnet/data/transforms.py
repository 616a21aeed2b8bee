"""Image transforms applied to whole batches at once, named as in torchvision.transforms.

Each transform takes a float array of images (N, C, H, W) in [0, 1] (or one image (C, H, W)) and
returns a new array; the input is never modified. Random transforms draw a different choice for
every image of the batch from a NumPy ``Generator``: the one passed as ``rng=`` (the DataLoader
passes one seeded per batch, so runs repeat exactly), or else their own, made from ``seed=``.
They run on host (NumPy) arrays, before a batch is moved to the device.
"""

import math

import numpy as np


class Transform:
    """Base class: ``__call__(x, rng=None)`` accepts (C, H, W) or (N, C, H, W) and calls ``apply``."""

    def __init__(self, seed=None):
        self.rng = np.random.default_rng(seed)

    def __call__(self, x, rng=None):
        x = np.asarray(x)
        if x.dtype.kind != "f":
            raise TypeError(f"{type(self).__name__} expects float images in [0, 1], got dtype {x.dtype}; "
                            f"convert uint8 images with x.astype(np.float32) / 255")
        if x.ndim == 3:
            return self.apply(x[None], self.rng if rng is None else rng)[0]
        if x.ndim != 4:
            raise ValueError(f"{type(self).__name__} expects images (N, C, H, W) or (C, H, W), got shape {x.shape}")
        return self.apply(x, self.rng if rng is None else rng)

    def apply(self, x, rng):
        raise NotImplementedError

    def __repr__(self):
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if k != "rng")
        return f"{type(self).__name__}({fields})"


def _size_pair(size, what="size"):
    pair = (size, size) if np.isscalar(size) else tuple(size)
    if len(pair) != 2 or min(pair) < 1:
        raise ValueError(f"{what} must be a positive int or (height, width), got {size!r}")
    return int(pair[0]), int(pair[1])


def _gather(x, rows, cols):
    """Per-image windows: out[n, c, i, j] = x[n, c, rows[n, i], cols[n, j]].

    Shapes: x (N, C, H, W), rows (N, OH), cols (N, OW) -> (N, C, OH, OW)
    """
    n = np.arange(x.shape[0])[:, None, None, None]
    c = np.arange(x.shape[1])[None, :, None, None]
    return x[n, c, rows[:, None, :, None], cols[:, None, None, :]]


class Compose:
    """Apply transforms in order, passing the same generator to each."""

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, x, rng=None):
        for t in self.transforms:
            x = t(x, rng=rng) if isinstance(t, (Transform, Compose)) else t(x)
        return x

    def __repr__(self):
        return "Compose([" + ", ".join(repr(t) for t in self.transforms) + "])"


class RandomCrop(Transform):
    """Zero-pad each side by ``padding`` pixels, then cut a ``size`` window at a random place per image.

    The CIFAR recipe of the ResNet paper is ``RandomCrop(32, padding=4)``: shifts of up to 4 pixels.
    """

    def __init__(self, size, padding=0, fill=0.0, seed=None):
        super().__init__(seed)
        self.size, self.padding, self.fill = _size_pair(size), int(padding), float(fill)

    def apply(self, x, rng):
        N, C, H, W = x.shape
        p = self.padding
        if p:
            x = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=self.fill)   # (N, C, H+2p, W+2p)
        th, tw = self.size
        if th > x.shape[2] or tw > x.shape[3]:
            raise ValueError(f"RandomCrop{self.size} does not fit images of {H}×{W} padded by {p}; "
                             f"use a smaller size or more padding")
        top = rng.integers(0, x.shape[2] - th + 1, size=N)
        left = rng.integers(0, x.shape[3] - tw + 1, size=N)
        return _gather(x, top[:, None] + np.arange(th), left[:, None] + np.arange(tw))


class RandomHorizontalFlip(Transform):
    """Mirror each image left-right with probability ``p`` (not for digits: a mirrored 3 is no digit)."""

    def __init__(self, p=0.5, seed=None):
        super().__init__(seed)
        self.p = float(p)

    def apply(self, x, rng):
        flip = rng.random(x.shape[0]) < self.p                            # (N,)
        return np.where(flip[:, None, None, None], x[..., ::-1], x)


class RandomResizedCrop(Transform):
    """Cut a random box of random area (``scale`` of the image) and aspect ratio (``ratio``, w/h),
    then resize it to ``size`` by bilinear sampling (no antialiasing).

    The box is chosen as torchvision does: up to 10 tries per image for a box that fits, else the
    largest centred box whose aspect ratio lies within ``ratio``.
    """

    def __init__(self, size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), seed=None):
        super().__init__(seed)
        if scale[0] > scale[1] or ratio[0] > ratio[1]:
            raise ValueError(f"scale and ratio must be (min, max) ranges, got scale={scale}, ratio={ratio}")
        self.size, self.scale, self.ratio = _size_pair(size), tuple(scale), tuple(ratio)

    def boxes(self, N, H, W, rng, tries=10):
        """Crop boxes (top, left, height, width), each an int array (N,)."""
        area = H * W * rng.uniform(self.scale[0], self.scale[1], size=(N, tries))
        aspect = np.exp(rng.uniform(math.log(self.ratio[0]), math.log(self.ratio[1]), size=(N, tries)))
        w = np.round(np.sqrt(area * aspect)).astype(np.int64)
        h = np.round(np.sqrt(area / aspect)).astype(np.int64)
        fits = (w >= 1) & (w <= W) & (h >= 1) & (h <= H)
        first = fits.argmax(axis=1)                                        # first box that fits
        rows = np.arange(N)
        h, w, found = h[rows, first], w[rows, first], fits.any(axis=1)
        # fallback: the whole image, narrowed to the nearest allowed aspect ratio, centred
        fh, fw = H, W
        if W / H < self.ratio[0]:
            fh = int(round(W / self.ratio[0]))
        elif W / H > self.ratio[1]:
            fw = int(round(H * self.ratio[1]))
        h, w = np.where(found, h, fh), np.where(found, w, fw)
        top = np.where(found, rng.integers(0, H - h + 1), (H - h) // 2)
        left = np.where(found, rng.integers(0, W - w + 1), (W - w) // 2)
        return top, left, h, w

    def apply(self, x, rng):
        N, C, H, W = x.shape
        top, left, h, w = self.boxes(N, H, W, rng)
        OH, OW = self.size
        ys = _sample_points(top, h, OH)                                   # (N, OH) source rows
        xs = _sample_points(left, w, OW)                                  # (N, OW) source columns
        y0, x0 = np.floor(ys).astype(np.int64), np.floor(xs).astype(np.int64)
        y1 = np.minimum(y0 + 1, (top + h - 1)[:, None])
        x1 = np.minimum(x0 + 1, (left + w - 1)[:, None])
        wy = (ys - y0).astype(x.dtype)[:, None, :, None]                  # (N, 1, OH, 1)
        wx = (xs - x0).astype(x.dtype)[:, None, None, :]                  # (N, 1, 1, OW)
        upper = _gather(x, y0, x0) * (1 - wx) + _gather(x, y0, x1) * wx
        lower = _gather(x, y1, x0) * (1 - wx) + _gather(x, y1, x1) * wx
        return upper * (1 - wy) + lower * wy


def _sample_points(start, length, out_size):
    """Pixel-centre sampling positions of ``out_size`` outputs over [start, start + length).

    Shapes: start (N,), length (N,) -> (N, out_size), clipped inside each box.
    """
    step = length[:, None] / out_size
    pos = start[:, None] + (np.arange(out_size) + 0.5) * step - 0.5
    return np.clip(pos, start[:, None], (start + length - 1)[:, None])


def _grey(x):
    """Luma (N, 1, H, W) of RGB images (ITU-R 601 weights); greyscale images are returned as they are."""
    if x.shape[1] == 1:
        return x
    if x.shape[1] != 3:
        raise ValueError(f"ColorJitter needs 1 or 3 channels, got {x.shape[1]}")
    weights = np.array([0.299, 0.587, 0.114], dtype=x.dtype)[None, :, None, None]
    return (x * weights).sum(axis=1, keepdims=True)


class ColorJitter(Transform):
    """Random brightness, contrast and saturation, each factor drawn per image from [1 − v, 1 + v].

    Applied in that fixed order (torchvision shuffles the order), results clipped to [0, 1]:
    brightness scales the pixels; contrast blends with the image's mean grey level; saturation
    blends with the image's greyscale version (no effect on greyscale images).
    """

    def __init__(self, brightness=0.0, contrast=0.0, saturation=0.0, seed=None):
        super().__init__(seed)
        for name, v in (("brightness", brightness), ("contrast", contrast), ("saturation", saturation)):
            if v < 0:
                raise ValueError(f"ColorJitter {name} must be ≥ 0, got {v}")
        self.brightness, self.contrast, self.saturation = float(brightness), float(contrast), float(saturation)

    def _factors(self, amount, N, rng, dtype):
        f = rng.uniform(max(0.0, 1.0 - amount), 1.0 + amount, size=N)
        return f.astype(dtype)[:, None, None, None]                       # (N, 1, 1, 1)

    def apply(self, x, rng):
        N = x.shape[0]
        if self.brightness:
            x = np.clip(x * self._factors(self.brightness, N, rng, x.dtype), 0, 1)
        if self.contrast:
            mean = _grey(x).mean(axis=(1, 2, 3), keepdims=True)            # (N, 1, 1, 1)
            x = np.clip(mean + self._factors(self.contrast, N, rng, x.dtype) * (x - mean), 0, 1)
        if self.saturation:
            grey = _grey(x)                                                # (N, 1, H, W)
            x = np.clip(grey + self._factors(self.saturation, N, rng, x.dtype) * (x - grey), 0, 1)
        return x


class Normalize(Transform):
    """(x − mean) / std per channel; ``mean`` and ``std`` have one value per channel (or one for all)."""

    def __init__(self, mean, std):
        super().__init__(None)
        self.mean = tuple(float(m) for m in np.atleast_1d(mean))
        self.std = tuple(float(s) for s in np.atleast_1d(std))
        if len(self.mean) != len(self.std):
            raise ValueError(f"Normalize: {len(self.mean)} means but {len(self.std)} stds")
        if min(self.std) <= 0:
            raise ValueError(f"Normalize: std must be positive, got {self.std}")

    def apply(self, x, rng):
        if len(self.mean) not in (1, x.shape[1]):
            raise ValueError(f"Normalize has {len(self.mean)} channel means but the images have "
                             f"{x.shape[1]} channels (shape {x.shape})")
        mean = np.asarray(self.mean, dtype=x.dtype)[None, :, None, None]
        std = np.asarray(self.std, dtype=x.dtype)[None, :, None, None]
        return (x - mean) / std
