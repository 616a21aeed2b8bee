"""Shapes: a generated 32×32 colour data set, harder than the 8×8 digits and made on the spot.

Ten classes of outline shapes (disk, ring, square, frame, triangle, cross, star, crescent, ellipse,
half-disk), each drawn at a random position, size and rotation, in a random colour on a random
two-colour gradient background, over two random line segments of clutter, with pixel noise. The
images are rendered at twice the size and averaged 2×2 (anti-aliased edges), then stored as uint8.

Why it is harder than the digits: 32×32 pixels and three channels (the CIFAR-10 shape, so the CIFAR
ResNets' three stages work on 32×32, 16×16 and 8×8 maps as in the paper); the class is the outline
only (colour, position, size and angle carry no information); clutter lines cross the background;
some pairs differ by a detail (disk / ellipse / half-disk, square / frame, disk / ring / crescent).

What it does not test: natural-image statistics (textures, parts, occlusion, lighting, classes that
are hard to tell apart even for people). Accuracies on it are not CIFAR-10 accuracies; use it to
compare networks with each other, and CIFAR-10 (``load_cifar10``) for numbers beside the paper's.

Generation is deterministic: the same sizes and seed give the same bytes on every machine (NumPy's
``default_rng``, float64 arithmetic). Nothing is stored in the package; 6,000 images take about a
second to draw.
"""

import numpy as np

from .datasets import ArrayDataset

SHAPE_CLASSES = ("disk", "ring", "square", "frame", "triangle", "cross", "star", "crescent", "ellipse",
                 "half-disk")


def _inside(kind, a, b):
    """Boolean mask of the points (a, b) (coordinates in units of the shape's radius) inside shape ``kind``.

    Shapes: a, b (n, P, P) -> (n, P, P)
    """
    rho = np.hypot(a, b)
    box = np.maximum(np.abs(a), np.abs(b))
    if kind == "disk":
        return rho < 0.85
    if kind == "ring":
        return (rho < 0.95) & (rho > 0.55)
    if kind == "square":
        return box < 0.7
    if kind == "frame":
        return (box < 0.8) & (box > 0.45)
    if kind == "triangle":                      # equilateral, circumradius 1: three half-planes at apothem 0.5
        angles = np.pi / 2 + 2 * np.pi * np.arange(3) / 3
        return np.max([a * np.cos(t) + b * np.sin(t) for t in angles], axis=0) < 0.5
    if kind == "cross":
        return ((np.abs(a) < 0.28) & (np.abs(b) < 0.95)) | ((np.abs(b) < 0.28) & (np.abs(a) < 0.95))
    if kind == "star":                          # five smooth points
        return rho < 0.6 + 0.35 * np.cos(5 * np.arctan2(b, a))
    if kind == "crescent":
        return (rho < 0.9) & (np.hypot(a - 0.45, b) > 0.7)
    if kind == "ellipse":
        return (a / 0.95) ** 2 + (b / 0.45) ** 2 < 1
    if kind == "half-disk":
        return (rho < 0.9) & (b > -0.05)
    raise ValueError(f"unknown shape {kind!r}; the shapes are {', '.join(SHAPE_CLASSES)}")


def _luminance(rgb):
    return rgb @ np.array([0.299, 0.587, 0.114])


def _draw(labels, image_size, rng, noise):
    """Images (n, 3, S, S) uint8 of the given labels.

    Shapes: labels (n,) -> (n, 3, S, S)
    """
    n, s = len(labels), image_size
    p = 2 * s                                               # render at twice the size, then average 2×2
    grid = (np.arange(p) + 0.5) / 2                         # pixel centres in output-pixel units
    y, x = grid[None, :, None], grid[None, None, :]         # (1, P, 1), (1, 1, P)
    radius = rng.uniform(0.22, 0.36, n) * s
    cx = rng.uniform(0.3, 0.7, n) * s
    cy = rng.uniform(0.3, 0.7, n) * s
    theta = rng.uniform(0, 2 * np.pi, n)
    bg = rng.uniform(0, 1, (n, 2, 3))                       # two background colours: a gradient between them
    fg = rng.uniform(0, 1, (n, 3))
    dull = np.abs(_luminance(fg) - _luminance(bg.mean(axis=1))) < 0.3    # too little contrast: push it
    push = np.where(_luminance(bg.mean(axis=1)) > 0.5, -0.45, 0.45)
    fg[dull] = np.clip(fg[dull] + push[dull, None], 0, 1)
    clutter = rng.uniform(0, s, (n, 2, 4))                  # two segments (x0, y0, x1, y1) per image
    clutter_rgb = rng.uniform(0, 1, (n, 2, 3))
    direction = rng.uniform(0, 2 * np.pi, n)

    def col(v):                                             # (n,) -> (n, 1, 1) to broadcast over the grid
        return v[:, None, None]

    along = ((x - s / 2) * col(np.cos(direction)) + (y - s / 2) * col(np.sin(direction))) / s + 0.5
    t = np.clip(along, 0, 1)[..., None]                     # (n, P, P, 1)
    image = bg[:, None, None, 0] * (1 - t) + bg[:, None, None, 1] * t           # (n, P, P, 3)
    for k in range(2):
        x0, y0, x1, y1 = (col(clutter[:, k, j]) for j in range(4))
        dx, dy = x1 - x0, y1 - y0
        u = np.clip(((x - x0) * dx + (y - y0) * dy) / np.maximum(dx * dx + dy * dy, 1e-9), 0, 1)
        line = np.hypot(x - x0 - u * dx, y - y0 - u * dy) < 0.6                 # about one pixel wide
        image = np.where(line[..., None], clutter_rgb[:, None, None, k], image)
    u = (x - col(cx)) * col(np.cos(theta)) + (y - col(cy)) * col(np.sin(theta))
    v = -(x - col(cx)) * col(np.sin(theta)) + (y - col(cy)) * col(np.cos(theta))
    a, b = u / col(radius), v / col(radius)                 # (n, P, P) in units of the radius
    mask = np.zeros((n, p, p), dtype=bool)
    for k, kind in enumerate(SHAPE_CLASSES):
        members = labels == k
        if members.any():
            mask[members] = _inside(kind, a[members], b[members])
    image = np.where(mask[..., None], fg[:, None, None], image)
    image = image.reshape(n, s, 2, s, 2, 3).mean(axis=(2, 4))                   # (n, S, S, 3)
    image = image + noise * rng.standard_normal(image.shape)
    image = np.clip(np.round(image * 255), 0, 255).astype(np.uint8)
    return image.transpose(0, 3, 1, 2).copy()                                    # (n, S, S, 3) -> (n, 3, S, S)


def make_shapes(num_images, image_size=32, seed=0, noise=0.05, chunk=500):
    """``num_images`` shape images (N, 3, S, S) uint8 and their labels (N,) int64, balanced over the 10
    classes (in a shuffled order). The same arguments give the same arrays."""
    if int(num_images) != num_images or num_images < 1:
        raise ValueError(f"num_images must be a positive whole number, got {num_images!r}")
    if int(image_size) != image_size or image_size < 8:
        raise ValueError(f"image_size must be a whole number of pixels ≥ 8, got {image_size!r}")
    num_images, image_size = int(num_images), int(image_size)
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(num_images) % len(SHAPE_CLASSES)).astype(np.int64)
    images = np.concatenate([_draw(labels[i:i + chunk], image_size, rng, noise)
                             for i in range(0, num_images, chunk)])
    return images, labels


def load_shapes(train_size=5000, test_size=1000, image_size=32, seed=0):
    """The generated shapes as ``(train, test)`` datasets of (3, image_size, image_size) uint8 images.

    The two splits are drawn from different streams of the same seed (no image is in both);
    ``image_size`` 16 draws the same kind of pictures at 16×16 (4× cheaper to train on).
    """
    train_seed, test_seed = np.random.SeedSequence(seed).spawn(2)
    train = make_shapes(train_size, image_size, train_seed)
    test = make_shapes(test_size, image_size, test_seed)
    return (ArrayDataset(*train, SHAPE_CLASSES, "shapes-train"),
            ArrayDataset(*test, SHAPE_CLASSES, "shapes-test"))
