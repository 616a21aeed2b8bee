"""Datasets held in memory as whole arrays: digits (bundled), CIFAR-10, image folders, synthetic.

Every dataset is an ``ArrayDataset``: images (N, C, H, W) stored as uint8 (0–255) or float32 in
[0, 1], integer labels (N,), and class names. ``dataset.get_batch(indices)`` returns float32
images in [0, 1] and int64 labels, ready for the transforms and the loader. The loaders return a
``(train, test)`` pair.
"""

import gzip
import os
import pickle

import numpy as np

from .images import IMAGE_EXTENSIONS, is_image_file, read_image

DIGITS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "digits.csv.gz")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"


class ArrayDataset:
    """Images and labels in memory.

    Shapes: images (N, C, H, W) uint8 or float32 in [0, 1]; labels (N,) integers in [0, len(classes))
    """

    def __init__(self, images, labels, classes=None, name="arrays"):
        images, labels = np.asarray(images), np.asarray(labels)
        if images.ndim != 4:
            raise ValueError(f"{name}: images must have shape (N, C, H, W), got {images.shape}")
        if images.dtype != np.uint8 and images.dtype.kind != "f":
            raise TypeError(f"{name}: images must be uint8 (0-255) or float in [0, 1], got dtype {images.dtype}")
        if labels.ndim != 1 or len(labels) != len(images):
            raise ValueError(f"{name}: {len(images)} images but labels of shape {labels.shape}; "
                             f"give one label per image")
        if labels.dtype.kind not in "iu":
            raise TypeError(f"{name}: labels must be integers, got dtype {labels.dtype}")
        if classes is None:
            classes = [str(k) for k in range(int(labels.max()) + 1 if len(labels) else 0)]
        if len(labels) and (labels.min() < 0 or labels.max() >= len(classes)):
            raise ValueError(f"{name}: labels span [{labels.min()}, {labels.max()}] but there are "
                             f"{len(classes)} classes")
        self.images, self.labels = images, labels.astype(np.int64)
        self.classes, self.name = list(classes), name

    def __len__(self):
        return len(self.labels)

    def __repr__(self):
        return (f"ArrayDataset({self.name!r}, {len(self)} images of shape {self.image_shape}, "
                f"{self.num_classes} classes)")

    @property
    def image_shape(self):
        """(C, H, W)."""
        return tuple(self.images.shape[1:])

    @property
    def num_classes(self):
        return len(self.classes)

    def get_batch(self, indices):
        """Images (B, C, H, W) float32 in [0, 1] and labels (B,) int64 for the given indices."""
        x = self.images[indices]
        x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32, copy=False)
        return x, self.labels[indices]

    def __getitem__(self, i):
        """One sample: image (C, H, W) float32 and its label, as a torch Dataset does."""
        x, y = self.get_batch(np.array([i]))
        return x[0], int(y[0])

    def subset(self, indices, name=None):
        """A dataset of the given samples (e.g. the first 200 for a quick check)."""
        indices = np.asarray(indices)
        return ArrayDataset(self.images[indices], self.labels[indices], self.classes, name or self.name)

    def channel_stats(self, chunk=4096):
        """Per-channel mean and standard deviation of the images in [0, 1] (for ``Normalize``).

        An empty dataset, or pixels that are NaN or infinite, raise ValueError: there is no mean to take.
        """
        if len(self) == 0:
            raise ValueError(f"{self.name}: the dataset has no images, so it has no channel mean and std; "
                             f"check the data folder and --subset")
        total = np.zeros(self.images.shape[1])
        total_sq = np.zeros(self.images.shape[1])
        for start in range(0, len(self), chunk):
            x, _ = self.get_batch(np.arange(start, min(start + chunk, len(self))))
            x = x.astype(np.float64)
            total += x.sum(axis=(0, 2, 3))
            total_sq += (x * x).sum(axis=(0, 2, 3))
        count = len(self) * self.images.shape[2] * self.images.shape[3]
        mean = total / count
        std = np.sqrt(np.maximum(total_sq / count - mean * mean, 0.0))
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std))):
            raise ValueError(f"{self.name}: some pixel values are NaN or infinite (channel means {mean.tolist()}); "
                             f"images must hold finite values in [0, 1]")
        return tuple(float(m) for m in mean), tuple(float(s) for s in std)


def stratified_split(labels, test_fraction=0.2, seed=0):
    """Indices ``(train, test)``: ``test_fraction`` of each class, chosen by a seeded shuffle.

    The same labels, fraction and seed always give the same split; both index arrays are sorted.
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    train, test = [], []
    for k in np.unique(labels):
        members = np.flatnonzero(labels == k)
        members = members[rng.permutation(len(members))]
        n_test = int(round(len(members) * test_fraction))
        test.append(members[:n_test])
        train.append(members[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


# --------------------------------------------------------------------------- digits
def load_digits(test_fraction=0.2, split_seed=0):
    """The bundled UCI handwritten digits: 1,797 greyscale 8×8 images, 10 classes.

    Pixels (0–16 in the file) are scaled to [0, 1]. The split is stratified and fixed: with the
    defaults, 1,438 training and 359 test images, whatever seed the training uses.
    Returns ``(train, test)`` datasets of images (N, 1, 8, 8).
    """
    try:
        with gzip.open(DIGITS_FILE, "rt") as f:
            table = np.loadtxt(f, delimiter=",", dtype=np.float64)
    except (OSError, EOFError, ValueError) as e:
        raise ValueError(f"{DIGITS_FILE}: the bundled digits file is unreadable (corrupt or truncated?); "
                         f"reinstall tinyresnet: {e}") from e
    if table.ndim != 2 or table.shape[1] != 65:
        raise ValueError(f"{DIGITS_FILE}: expected rows of 64 pixels and a label, got a table of shape {table.shape}")
    images = (table[:, :64] / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)   # (N, 64) -> (N, 1, 8, 8)
    labels = table[:, 64].astype(np.int64)
    classes = [str(k) for k in range(10)]
    train_idx, test_idx = stratified_split(labels, test_fraction, split_seed)
    return (ArrayDataset(images[train_idx], labels[train_idx], classes, "digits-train"),
            ArrayDataset(images[test_idx], labels[test_idx], classes, "digits-test"))


# --------------------------------------------------------------------------- CIFAR-10
class _ArraysOnlyUnpickler(pickle.Unpickler):
    """Unpickles the CIFAR batch format (dicts, lists, bytes, NumPy arrays) and refuses anything else,
    so a doctored batch file cannot run code."""

    def find_class(self, module, name):
        allowed = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
        if (module, name) in allowed:
            return allowed[(module, name)]
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name == "_reconstruct":
            return _numpy_core().multiarray._reconstruct
        if module in ("numpy.core.numeric", "numpy._core.numeric") and name == "_frombuffer":
            return _numpy_core().numeric._frombuffer
        if (module, name) == ("_codecs", "encode"):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a CIFAR batch holds only arrays and lists")


def _numpy_core():
    return getattr(np, "_core", None) or np.core


def _cifar_folder(data_dir):
    """The folder holding data_batch_1: ``data_dir`` itself or its ``cifar-10-batches-py``."""
    data_dir = os.path.expanduser(data_dir or "data")
    for folder in (data_dir, os.path.join(data_dir, "cifar-10-batches-py")):
        if os.path.isfile(os.path.join(folder, "data_batch_1")):
            return folder
    raise FileNotFoundError(
        f"CIFAR-10 not found in {data_dir!r} (looked for data_batch_1 there and in "
        f"{os.path.join(data_dir, 'cifar-10-batches-py')}). Download the 'CIFAR-10 python version' "
        f"(cifar-10-python.tar.gz, 163 MB) from {CIFAR10_URL}, unpack it with "
        f"`tar xzf cifar-10-python.tar.gz -C {data_dir}`, and pass --data-dir {data_dir}; or let "
        f"`tinyresnet train --dataset cifar10 --download` (CIFAR10(..., download=True) in Python) do it")


def read_cifar_batch(path):
    """One CIFAR-10 python batch file -> images (N, 3, 32, 32) uint8 and labels (N,) int64."""
    try:
        with open(path, "rb") as f:
            batch = _ArraysOnlyUnpickler(f, encoding="bytes").load()
    except FileNotFoundError:
        raise FileNotFoundError(f"missing CIFAR-10 batch file {path}; the download unpacks "
                                f"data_batch_1..5 and test_batch side by side") from None
    except Exception as e:   # truncated (EOFError), corrupt (UnpicklingError), wrong file (any)
        raise ValueError(f"{path}: not a readable CIFAR-10 batch file (truncated or corrupt?): "
                         f"{type(e).__name__}: {e}. Download it again from {CIFAR10_URL}") from e
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        keys = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
        raise ValueError(f"{path}: a CIFAR-10 batch is a dict with b'data' and b'labels', found {keys}")
    data, labels = np.asarray(batch[b"data"]), np.asarray(batch[b"labels"], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(f"{path}: b'data' should be uint8 of shape (N, 3072), got {data.dtype} {data.shape}")
    if len(labels) != len(data):
        raise ValueError(f"{path}: {len(data)} images but {len(labels)} labels (truncated?)")
    return data.reshape(-1, 3, 32, 32), labels     # (N, 3072) -> (N, 3, 32, 32), channel-major rows


def load_cifar10(data_dir="data", download=False):
    """CIFAR-10 from the standard python batch files: 50,000 training and 10,000 test images (3, 32, 32).

    ``data_dir`` holds ``data_batch_1`` … ``data_batch_5`` and ``test_batch``, directly or in the
    ``cifar-10-batches-py`` folder that the download unpacks to. ``download=True`` first fetches and
    unpacks the official archive into ``data_dir`` unless the files are already there (see
    ``tinyresnet.data.download``). Returns ``(train, test)``.
    """
    folder = _cifar_source(data_dir, download)
    classes = _cifar_classes(folder)
    return _cifar_split(folder, True, classes), _cifar_split(folder, False, classes)


class CIFAR10(ArrayDataset):
    """One split of CIFAR-10, as ``torchvision.datasets.CIFAR10(root, train, download)`` is called.

    ``CIFAR10("data", train=True, download=True)`` downloads the official archive into ``data`` once
    (MD5-checked, resumable), then holds the 50,000 training images (``train=False``: the 10,000 test
    images) in memory as uint8 ``images`` (N, 3, 32, 32) with ``labels`` (N,) and ``classes``. Unlike
    torchvision's, ``dataset[i]`` is a float32 (3, 32, 32) array in [0, 1] and its label, and the
    augmentation goes to the ``DataLoader`` (``transform=``), which transforms whole batches.
    """

    def __init__(self, root="data", train=True, download=False):
        folder = _cifar_source(root, download)
        split = _cifar_split(folder, train, _cifar_classes(folder))
        super().__init__(split.images, split.labels, split.classes, split.name)
        self.root, self.train, self.folder = root, bool(train), folder

    @property
    def class_to_idx(self):
        """{class name: label}, as torchvision's datasets have."""
        return {name: k for k, name in enumerate(self.classes)}


def _cifar_source(data_dir, download):
    """The folder of the batch files, downloading them first if asked."""
    if download:
        from .download import download_cifar10

        return download_cifar10(data_dir or "data", progress=True)
    return _cifar_folder(data_dir)


def _cifar_split(folder, train, classes):
    """The training set (data_batch_1..5) or the test set (test_batch) of the batch files in ``folder``."""
    names = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
    batches = [read_cifar_batch(os.path.join(folder, name)) for name in names]
    return ArrayDataset(np.concatenate([x for x, _ in batches]), np.concatenate([y for _, y in batches]),
                        classes, "cifar10-train" if train else "cifar10-test")


def _cifar_classes(folder):
    """The class names from ``batches.meta`` when it is readable, otherwise the standard ten."""
    meta = os.path.join(folder, "batches.meta")
    if os.path.isfile(meta):
        try:
            with open(meta, "rb") as f:
                names = _ArraysOnlyUnpickler(f, encoding="bytes").load()[b"label_names"]
            return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
        except Exception:
            pass   # the class names are a nicety; the standard ones are used instead
    return CIFAR10_CLASSES


# --------------------------------------------------------------------------- image folders
class ImageFolder(ArrayDataset):
    """Pictures in one subfolder per class (``root/cat/1.png``, ``root/dog/a.jpg``), read with Pillow.

    Class names are the subfolder names in sorted order. Every image is converted to ``channels``
    (3: RGB, 1: greyscale) and resized to ``image_size`` (an int or ``(H, W)``), then kept in
    memory as uint8. A subfolder without images raises FileNotFoundError naming it (as torchvision's
    ImageFolder does): it would be a class the model could never learn.
    """

    def __init__(self, root, image_size=32, channels=3):
        if not os.path.isdir(root):
            raise FileNotFoundError(f"image folder {root!r} does not exist; give a folder with one "
                                    f"subfolder of images per class")
        classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
        files = {name: _image_files(os.path.join(root, name)) for name in classes}
        if not any(files.values()):
            raise ValueError(f"no images found in {root!r}: expected subfolders (one per class) holding "
                             f"PNG or JPEG files, e.g. {os.path.join(root, 'cat', '001.png')}")
        empty = [os.path.join(root, name) for name in classes if not files[name]]
        if empty:   # a class with no images would still be an output of the model, never learnt
            raise FileNotFoundError(f"{len(empty)} class folder(s) of {root!r} hold no images: {', '.join(empty)}. "
                                    f"Each subfolder is a class; remove the empty ones or add images to them "
                                    f"(files ending in {', '.join(IMAGE_EXTENSIONS)})")
        size = (image_size, image_size) if np.isscalar(image_size) else tuple(image_size)
        images, labels = [], []
        for k, name in enumerate(classes):
            for path in files[name]:
                images.append(read_image(path, size, channels))
                labels.append(k)
        super().__init__(np.stack(images), np.array(labels), classes, os.path.basename(os.path.normpath(root)))
        self.root = root


def load_image_folder(root, image_size=32, channels=3, test_fraction=0.2, split_seed=0):
    """``(train, test)`` from ``root/train`` and ``root/test`` when both exist, otherwise a fixed
    stratified split of ``root`` (``test_fraction`` of each class held out)."""
    train_dir, test_dir = os.path.join(root, "train"), os.path.join(root, "test")
    if os.path.isdir(train_dir) and os.path.isdir(test_dir):
        train, test = ImageFolder(train_dir, image_size, channels), ImageFolder(test_dir, image_size, channels)
        if train.classes != test.classes:
            raise ValueError(f"{train_dir} has classes {train.classes} but {test_dir} has {test.classes}")
        return train, test
    full = ImageFolder(root, image_size, channels)
    train_idx, test_idx = stratified_split(full.labels, test_fraction, split_seed)
    if len(test_idx) == 0:
        needed = int(0.5 / test_fraction) + 1          # the fewest images per class that leave one for testing
        raise ValueError(f"{root}: holding out {test_fraction:.0%} of each class leaves no test images "
                         f"({len(full)} images in {full.num_classes} classes). Add images (at least {needed} "
                         f"per class) or put the images in {train_dir} and {test_dir}")
    return full.subset(train_idx, full.name + "-train"), full.subset(test_idx, full.name + "-test")


def _image_files(folder):
    """The image files directly in ``folder``, sorted by name."""
    paths = (os.path.join(folder, file) for file in sorted(os.listdir(folder)))
    return [p for p in paths if os.path.isfile(p) and is_image_file(p)]


# --------------------------------------------------------------------------- synthetic
def synthetic(num_samples=256, image_shape=(1, 8, 8), num_classes=10, noise=0.15, seed=0, test_fraction=0.25):
    """Generated, learnable data for quick tests: each class is a random template plus noise.

    Returns ``(train, test)`` float32 datasets with images in [0, 1].
    """
    rng = np.random.default_rng(seed)
    templates = rng.random((num_classes, *image_shape))
    labels = np.arange(num_samples) % num_classes
    rng.shuffle(labels)
    images = templates[labels] + noise * rng.standard_normal((num_samples, *image_shape))
    images = np.clip(images, 0.0, 1.0).astype(np.float32)
    classes = [f"class{k}" for k in range(num_classes)]
    train_idx, test_idx = stratified_split(labels, test_fraction, seed)
    return (ArrayDataset(images[train_idx], labels[train_idx], classes, "synthetic-train"),
            ArrayDataset(images[test_idx], labels[test_idx], classes, "synthetic-test"))


# --------------------------------------------------------------------------- by name
DATASETS = ("digits", "cifar10", "imagefolder", "synthetic", "shapes")


def get_dataset(name, data_dir=None, image_size=None, channels=None):
    """``(train, test)`` for a dataset name: digits, cifar10 (from ``data_dir``), imagefolder
    (``data_dir`` is the folder), synthetic, or shapes (generated 32×32 colour shapes; ``image_size``
    changes the size). An empty training or test set raises ValueError."""
    train, test = _load_by_name(name, data_dir, image_size, channels)
    for split, dataset in (("training", train), ("test", test)):
        if len(dataset) == 0:
            where = f" from {data_dir!r}" if data_dir else ""
            raise ValueError(f"the {name} dataset{where} has no {split} images ({dataset.name}); "
                             f"check the files there")
    return train, test


def _load_by_name(name, data_dir, image_size, channels):
    if name == "digits":
        return load_digits()
    if name == "cifar10":
        return load_cifar10(data_dir or "data")
    if name == "imagefolder":
        if not data_dir:
            raise ValueError("the imagefolder dataset needs --data-dir: a folder with one subfolder of images "
                             "per class")
        return load_image_folder(data_dir, image_size or 32, channels or 3)
    if name == "synthetic":
        return synthetic(image_shape=(channels or 1, image_size or 8, image_size or 8))
    if name == "shapes":
        # imported here, not at the top: shapes.py imports ArrayDataset from this file
        from .shapes import load_shapes

        if channels not in (None, 3):
            raise ValueError(f"the shapes dataset has 3 (RGB) channels, not {channels}; leave --channels out")
        return load_shapes(image_size=image_size or 32)
    raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
