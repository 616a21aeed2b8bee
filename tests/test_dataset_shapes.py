"""The generated shapes data set: deterministic, balanced, registered by name, and labelled by shape only."""

import numpy as np
import pytest

from tinyresnet.data import DATASETS, SHAPE_CLASSES, get_dataset, load_shapes, make_shapes


def test_same_arguments_give_the_same_bytes_and_another_seed_does_not():
    a, la = make_shapes(60, 16, seed=3)
    b, lb = make_shapes(60, 16, seed=3)
    c, _ = make_shapes(60, 16, seed=4)
    assert a.dtype == np.uint8 and a.shape == (60, 3, 16, 16) and la.dtype == np.int64
    assert np.array_equal(a, b) and np.array_equal(la, lb)
    assert not np.array_equal(a, c)


def test_splits_are_balanced_disjoint_and_sized_as_asked():
    train, test = load_shapes(train_size=200, test_size=100, image_size=32)
    assert (len(train), len(test)) == (200, 100)
    assert train.image_shape == (3, 32, 32) and train.classes == list(SHAPE_CLASSES)
    assert np.bincount(train.labels, minlength=10).tolist() == [20] * 10
    assert np.bincount(test.labels, minlength=10).tolist() == [10] * 10
    flat_train = {img.tobytes() for img in train.images}
    assert not any(img.tobytes() in flat_train for img in test.images)


def test_registered_by_name_for_the_cli():
    assert "shapes" in DATASETS
    train, test = get_dataset("shapes", image_size=16)
    assert train.image_shape == (3, 16, 16) and len(train) == 5000 and len(test) == 1000
    with pytest.raises(ValueError, match="3 \\(RGB\\) channels"):
        get_dataset("shapes", channels=1)


def test_colour_carries_no_information_but_the_shape_does():
    images, labels = make_shapes(1000, 16, seed=0)
    x = images.astype(np.float64) / 255
    colour = np.array([x[labels == k].mean(axis=(0, 2, 3)) for k in range(10)])     # (10 classes, 3)
    assert np.ptp(colour, axis=0).max() < 0.08            # every class has about the same mean colour
    # the shapes differ in how much of the picture they cover: |pixel - median pixel| per image
    cover = np.abs(x - np.median(x, axis=(2, 3), keepdims=True)).mean(axis=(1, 2, 3))
    per_class = np.array([cover[labels == k].mean() for k in range(10)])
    assert np.ptp(per_class) > 0.01


def test_bad_sizes_are_refused_with_the_value():
    with pytest.raises(ValueError, match="num_images"):
        make_shapes(0)
    with pytest.raises(ValueError, match="image_size"):
        make_shapes(10, image_size=4)
