"""Datasets, batch transforms and the DataLoader.

>>> from tinyresnet.data import load_digits, DataLoader, transforms as T
>>> train, test = load_digits()                        # bundled: 1,438 + 359 images (1, 8, 8)
>>> loader = DataLoader(train, batch_size=64, shuffle=True, seed=0,
...                     transform=T.RandomCrop(8, padding=1))
>>> images, labels = next(iter(loader))                # (64, 1, 8, 8) float32, (64,) int64
>>> shapes_train, shapes_test = load_shapes()          # generated: 5,000 + 1,000 images (3, 32, 32)
>>> cifar_train = CIFAR10("data", train=True, download=True)   # fetched once, MD5-checked, into data/
"""

from . import transforms
from .datasets import (
    CIFAR10,
    DATASETS,
    ArrayDataset,
    ImageFolder,
    get_dataset,
    load_cifar10,
    load_digits,
    load_image_folder,
    read_cifar_batch,
    stratified_split,
    synthetic,
)
from .download import DownloadError, download_cifar10
from .images import read_image
from .loader import DataLoader
from .shapes import SHAPE_CLASSES, load_shapes, make_shapes
from .tensor_dataset import Digits, TensorDataset

__all__ = ["CIFAR10", "DATASETS", "SHAPE_CLASSES", "ArrayDataset", "DataLoader", "Digits", "DownloadError",
           "ImageFolder", "TensorDataset", "download_cifar10", "get_dataset", "load_cifar10", "load_digits",
           "load_image_folder", "load_shapes", "make_shapes",
           "read_cifar_batch", "read_image", "stratified_split", "synthetic", "transforms"]
