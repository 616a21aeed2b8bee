"""Datasets, batch transforms and the DataLoader.

>>> from tinyresnet.data import load_digits, DataLoader, transforms as T
>>> train, test = load_digits()                        # bundled: 1,438 + 359 images (1, 8, 8)
>>> loader = DataLoader(train, batch_size=64, shuffle=True, seed=0,
...                     transform=T.RandomCrop(8, padding=1))
>>> images, labels = next(iter(loader))                # (64, 1, 8, 8) float32, (64,) int64
"""

from . import transforms
from .datasets import (
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
from .images import read_image
from .loader import DataLoader

__all__ = ["DATASETS", "ArrayDataset", "DataLoader", "ImageFolder", "get_dataset", "load_cifar10", "load_digits",
           "load_image_folder", "read_cifar_batch", "read_image", "stratified_split", "synthetic", "transforms"]
