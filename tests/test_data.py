"""Datasets (bundled digits, CIFAR-10 batch files, image folders, synthetic), batch transforms, the DataLoader."""

import hashlib
import os
import pickle
import threading

import numpy as np
import pytest

from tinyresnet.data import (
    ArrayDataset,
    DataLoader,
    ImageFolder,
    get_dataset,
    load_cifar10,
    load_digits,
    load_image_folder,
    read_image,
    stratified_split,
    synthetic,
)
from tinyresnet.data import transforms as T
from tinyresnet.data.datasets import DIGITS_FILE

TORCH_REASON = "torch is the optional oracle for bilinear resizing (pip install torch)"


# ---------------------------------------------------------------------------------------------- digits
def test_bundled_digits_file_is_the_documented_one():
    with open(DIGITS_FILE, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    readme = open(os.path.join(os.path.dirname(DIGITS_FILE), "README.md")).read()
    assert digest in readme, "the README beside digits.csv.gz must state the file's sha256"
    assert "CC BY 4.0" in readme and "Alpaydin" in readme


def test_digits_shapes_and_split():
    train, test = load_digits()
    assert len(train) + len(test) == 1797                       # the UCI test set, all of it
    assert train.image_shape == test.image_shape == (1, 8, 8) and train.num_classes == 10
    x, y = train.get_batch(np.arange(len(train)))
    assert x.dtype == np.float32 and y.dtype == np.int64
    assert x.min() == 0.0 and x.max() == 1.0                    # 0..16 scaled by 1/16
    assert np.allclose(x * 16, np.round(x * 16))
    # stratified: 20% of every class held out, the same images on every call
    per_class = np.bincount(np.concatenate([train.labels, test.labels]), minlength=10)
    np.testing.assert_allclose(np.bincount(test.labels, minlength=10), per_class * 0.2, atol=0.5)
    train2, test2 = load_digits()
    np.testing.assert_array_equal(test.images, test2.images)


def test_stratified_split_properties():
    labels = np.repeat(np.arange(4), [10, 20, 30, 41])
    tr, te = stratified_split(labels, 0.25, seed=3)
    assert len(np.intersect1d(tr, te)) == 0 and len(tr) + len(te) == len(labels)
    assert list(np.bincount(labels[te])) == [2, 5, 8, 10]       # round(n/4) per class (banker's rounding: 2.5 -> 2)
    assert np.array_equal(te, stratified_split(labels, 0.25, seed=3)[1])
    assert not np.array_equal(te, stratified_split(labels, 0.25, seed=4)[1])
    with pytest.raises(ValueError, match="between 0 and 1"):
        stratified_split(labels, 1.5)


def test_array_dataset_checks_and_access():
    images = np.arange(2 * 3 * 4 * 4, dtype=np.uint8).reshape(2, 3, 4, 4)
    ds = ArrayDataset(images, [1, 0], classes=["a", "b"])
    x, y = ds[1]
    assert x.shape == (3, 4, 4) and y == 0
    np.testing.assert_allclose(x, images[1] / 255.0, rtol=1e-6)
    mean, std = ds.channel_stats()
    np.testing.assert_allclose(mean, (images / 255.0).mean(axis=(0, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(std, (images / 255.0).std(axis=(0, 2, 3)), rtol=1e-5)
    with pytest.raises(ValueError, match="labels span"):
        ArrayDataset(images, [0, 2], classes=["a", "b"])
    with pytest.raises(ValueError, match="one label per image"):
        ArrayDataset(images, [0], classes=["a", "b"])
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        ArrayDataset(images[0], [0, 1, 2])


def test_synthetic_is_learnable_by_nearest_template():
    train, test = synthetic(num_samples=200, image_shape=(1, 6, 6), num_classes=4)
    centroids = np.stack([train.images[train.labels == k].mean(axis=0) for k in range(4)])
    distances = ((test.images[:, None] - centroids[None]) ** 2).sum(axis=(2, 3, 4))
    assert (distances.argmin(axis=1) == test.labels).mean() > 0.9


def test_get_dataset_unknown_name():
    with pytest.raises(ValueError, match="digits, cifar10, imagefolder, synthetic"):
        get_dataset("mnist")


# ---------------------------------------------------------------------------------------------- CIFAR-10
def write_cifar(folder, per_batch=6, seed=0, corrupt=None):
    """Small batch files in the CIFAR-10 python format: pickled dicts of b'data' (N, 3072) uint8 and b'labels'."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=per_batch)]
        with open(os.path.join(folder, name), "wb") as f:
            pickle.dump({b"batch_label": name.encode(), b"labels": labels, b"data": data}, f, protocol=2)
    with open(os.path.join(folder, "batches.meta"), "wb") as f:
        pickle.dump({b"label_names": [f"c{k}".encode() for k in range(10)]}, f, protocol=2)
    return folder


def test_cifar10_reads_the_batch_format(tmp_path):
    folder = write_cifar(tmp_path / "cifar-10-batches-py")
    train, test = load_cifar10(str(tmp_path))                  # finds the cifar-10-batches-py subfolder
    assert len(train) == 30 and len(test) == 6 and train.image_shape == (3, 32, 32)
    assert train.classes[3] == "c3"
    with open(folder / "data_batch_2", "rb") as f:
        raw = pickle.load(f, encoding="bytes")
    image = train.images[6]                                    # the first image of data_batch_2
    # a row is 1024 red values (row-major 32×32), then 1024 green, then 1024 blue
    assert image[0, 0, 1] == raw[b"data"][0, 1] and image[1, 0, 0] == raw[b"data"][0, 1024]
    assert image[2, 31, 31] == raw[b"data"][0, 3071] and train.labels[6] == raw[b"labels"][0]
    x, _ = test.get_batch(np.arange(2))
    assert x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1


def test_cifar10_missing_says_what_to_download(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_cifar10(str(tmp_path / "nowhere"))
    message = str(err.value)
    assert "cifar-10-python.tar.gz" in message and "https://www.cs.toronto.edu/~kriz/cifar.html" in message
    assert "--data-dir" in message and "nowhere" in message


@pytest.mark.parametrize("damage", ["truncate", "garbage", "wrong_shape", "code"])
def test_cifar10_damaged_batch_names_the_file(tmp_path, damage):
    folder = write_cifar(tmp_path)
    target = folder / "data_batch_3"
    if damage == "truncate":
        target.write_bytes(target.read_bytes()[:500])
    elif damage == "garbage":
        target.write_bytes(b"this is not a pickle")
    elif damage == "wrong_shape":
        with open(target, "wb") as f:
            pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, f)
    else:   # a pickle that would run a command: refused, not executed
        target.write_bytes(b"cos\nsystem\n(S'echo hacked'\ntR.")
    with pytest.raises(ValueError, match="data_batch_3"):
        load_cifar10(str(folder))


# ---------------------------------------------------------------------------------------------- image folders
def write_png(path, array):
    from PIL import Image

    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(array).save(path)


def test_image_folder(tmp_path):
    rng = np.random.default_rng(0)
    for k, name in enumerate(["dog", "cat"]):
        for i in range(5):
            write_png(str(tmp_path / name / f"{i}.png"), np.full((12, 10, 3), 40 * k + i, np.uint8))
    write_png(str(tmp_path / "cat" / "grey.png"), rng.integers(0, 255, (20, 20), dtype=np.uint8))
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    ds = ImageFolder(str(tmp_path), image_size=8)
    assert ds.classes == ["cat", "dog"] and len(ds) == 11 and ds.image_shape == (3, 8, 8)
    assert list(np.bincount(ds.labels)) == [6, 5]
    assert ds.images[0].min() == ds.images[0].max() == 40      # cat/0.png: a flat colour stays flat
    grey = ImageFolder(str(tmp_path), image_size=(6, 4), channels=1)
    assert grey.image_shape == (1, 6, 4)
    train, test = load_image_folder(str(tmp_path), image_size=8, test_fraction=0.2)
    assert len(train) + len(test) == 11 and set(test.labels) == {0, 1}


def test_image_folder_with_train_and_test(tmp_path):
    for split in ("train", "test"):
        for name in ("a", "b"):
            write_png(str(tmp_path / split / name / "x.png"), np.zeros((4, 4, 3), np.uint8))
    train, test = load_image_folder(str(tmp_path), image_size=4)
    assert len(train) == len(test) == 2 and train.classes == ["a", "b"]


def test_image_folder_bad_input(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ImageFolder(str(tmp_path / "missing"))
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(ValueError, match="no images found"):
        ImageFolder(str(tmp_path / "empty"))
    write_png(str(tmp_path / "bad" / "a" / "ok.png"), np.zeros((4, 4, 3), np.uint8))
    broken = tmp_path / "bad" / "a" / "broken.png"
    write_png(str(broken), np.zeros((32, 32, 3), np.uint8) + 7)
    broken.write_bytes(broken.read_bytes()[:60])               # a truncated PNG
    with pytest.raises(ValueError, match="broken.png"):
        ImageFolder(str(tmp_path / "bad"))


def test_read_image_converts(tmp_path):
    rgb = np.zeros((10, 10, 3), np.uint8)
    rgb[..., 0] = 255                                          # pure red
    write_png(str(tmp_path / "red.png"), rgb)
    assert read_image(str(tmp_path / "red.png")).shape == (3, 10, 10)
    grey = read_image(str(tmp_path / "red.png"), size=(5, 5), channels=1)
    assert grey.shape == (1, 5, 5) and abs(int(grey[0, 2, 2]) - 76) <= 1     # luma of red: 0.299 · 255
    with pytest.raises(FileNotFoundError, match="nope.png"):
        read_image(str(tmp_path / "nope.png"))


def test_read_image_shrinks_by_area_averaging(tmp_path):
    """A 4× enlarged 8×8 picture comes back as the same 8×8 values (the digits' 4×4 block counting)."""
    small = np.random.default_rng(0).integers(0, 256, (8, 8), dtype=np.uint8)
    write_png(str(tmp_path / "big.png"), np.kron(small, np.ones((4, 4), np.uint8)))     # (32, 32)
    np.testing.assert_array_equal(read_image(str(tmp_path / "big.png"), size=(8, 8), channels=1)[0], small)
    blocks = np.random.default_rng(1).integers(0, 256, (32, 32)).astype(np.uint8)
    write_png(str(tmp_path / "noisy.png"), blocks)
    averaged = blocks.reshape(8, 4, 8, 4).mean(axis=(1, 3))
    np.testing.assert_allclose(read_image(str(tmp_path / "noisy.png"), size=(8, 8), channels=1)[0], averaged, atol=1)


# ---------------------------------------------------------------------------------------------- transforms
@pytest.fixture
def batch():
    return np.random.default_rng(0).random((16, 3, 8, 8)).astype(np.float32)


def test_random_crop_is_a_shifted_window(batch):
    out = T.RandomCrop(8, padding=2)(batch, rng=np.random.default_rng(1))
    padded = np.pad(batch, ((0, 0), (0, 0), (2, 2), (2, 2)))
    offsets = set()
    for n in range(len(batch)):
        matches = [(i, j) for i in range(5) for j in range(5) if np.array_equal(out[n], padded[n, :, i:i + 8, j:j + 8])]
        assert matches, f"image {n} is not a window of its padded original"
        offsets.add(matches[0])
    assert len(offsets) > 5                                     # images get different shifts


def test_random_transforms_are_seeded_and_leave_input_alone(batch):
    pipeline = T.Compose([T.RandomResizedCrop(8, scale=(0.3, 1)), T.RandomCrop(8, padding=1),
                          T.RandomHorizontalFlip(), T.ColorJitter(0.4, 0.4, 0.4)])
    before = batch.copy()
    a = pipeline(batch, rng=np.random.default_rng(5))
    b = pipeline(batch, rng=np.random.default_rng(5))
    c = pipeline(batch, rng=np.random.default_rng(6))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(batch, before)
    assert a.dtype == np.float32 and a.shape == batch.shape
    own = T.RandomCrop(8, padding=1, seed=3)                     # a transform's own generator, seeded
    np.testing.assert_array_equal(own(batch), T.RandomCrop(8, padding=1, seed=3)(batch))


def test_horizontal_flip(batch):
    np.testing.assert_array_equal(T.RandomHorizontalFlip(p=0)(batch), batch)
    np.testing.assert_array_equal(T.RandomHorizontalFlip(p=1)(batch), batch[..., ::-1])
    out = T.RandomHorizontalFlip()(batch, rng=np.random.default_rng(0))
    flipped = [np.array_equal(o, x[..., ::-1]) for o, x in zip(out, batch)]
    kept = [np.array_equal(o, x) for o, x in zip(out, batch)]
    assert all(f or k for f, k in zip(flipped, kept)) and any(flipped) and any(kept)


def test_random_resized_crop_boxes(batch):
    t = T.RandomResizedCrop(8, scale=(0.2, 0.6), ratio=(0.5, 2.0))
    top, left, h, w = t.boxes(1000, 32, 48, np.random.default_rng(0))
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= 32).all() and (left + w <= 48).all()
    area = h * w / (32 * 48)
    assert 0.15 < area.min() and area.max() < 0.65              # the scale range, up to rounding
    assert 0.4 < (w / h).min() and (w / h).max() < 2.5
    whole = T.RandomResizedCrop(8, scale=(1, 1), ratio=(1, 1))(batch)   # the full box at the same size: identity
    np.testing.assert_allclose(whole, batch, atol=1e-6)
    grown = T.RandomResizedCrop((5, 11))(batch)
    assert grown.shape == (16, 3, 5, 11) and batch.min() <= grown.min() and grown.max() <= batch.max()


def test_random_resized_crop_resize_matches_torch_bilinear(batch):
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    out = T.RandomResizedCrop(20, scale=(1, 1), ratio=(1, 1))(batch)            # the whole image, enlarged
    expected = torch.nn.functional.interpolate(torch.tensor(batch), size=(20, 20), mode="bilinear",
                                               align_corners=False).numpy()
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_color_jitter_properties(batch):
    mid = 0.25 + 0.5 * batch                                    # away from the clip limits
    rng = np.random.default_rng(0)
    bright = T.ColorJitter(brightness=0.3)(mid, rng=rng)
    ratio = bright / mid
    assert np.allclose(ratio, ratio[:, :1, :1, :1], rtol=1e-5)  # one factor per image
    assert 0.7 <= ratio.min() and ratio.max() <= 1.3 and ratio.std() > 0.01
    weights = np.array([0.299, 0.587, 0.114])[None, :, None, None]
    contrast = T.ColorJitter(contrast=0.2)(mid, rng=rng)
    np.testing.assert_allclose((contrast * weights).sum(1).mean((1, 2)), (mid * weights).sum(1).mean((1, 2)),
                               rtol=1e-5)                       # the mean grey level is kept
    saturated = T.ColorJitter(saturation=0.2)(mid, rng=rng)
    np.testing.assert_allclose((saturated * weights).sum(1), (mid * weights).sum(1), rtol=1e-5)   # luma kept
    grey = mid[:, :1]
    np.testing.assert_array_equal(T.ColorJitter(saturation=0.9)(grey), grey)   # nothing to saturate
    assert T.ColorJitter(brightness=5)(batch).max() <= 1.0


def test_normalize_and_single_images(batch):
    out = T.Normalize((0.5, 0.4, 0.3), (0.2, 0.25, 0.5))(batch)
    np.testing.assert_allclose(out[:, 1], (batch[:, 1] - 0.4) / 0.25, rtol=1e-6)
    one = T.Normalize(0.5, 0.2)(batch[0])                      # (C, H, W) works too
    assert one.shape == (3, 8, 8)
    with pytest.raises(ValueError, match="2 channel means but the images have 3"):
        T.Normalize((0.5, 0.5), (1, 1))(batch)
    with pytest.raises(TypeError, match="float images"):
        T.RandomCrop(8)(np.zeros((1, 1, 8, 8), np.uint8))
    with pytest.raises(ValueError, match="does not fit"):
        T.RandomCrop(10)(batch)
    assert T.Normalize(0, 1)(batch.astype(np.float64)).dtype == np.float64


# ---------------------------------------------------------------------------------------------- loader
class CountingDataset(ArrayDataset):
    """Records which thread prepared each batch, and can fail on request."""

    def __init__(self, n=50, fail_at=None):
        super().__init__(np.arange(n, dtype=np.float32).reshape(n, 1, 1, 1), np.arange(n) % 3)
        self.threads, self.fail_at = [], fail_at

    def get_batch(self, indices):
        self.threads.append(threading.current_thread().name)
        if self.fail_at is not None and len(self.threads) > self.fail_at:
            raise RuntimeError("disk on fire")
        return super().get_batch(indices)


def values(loader, epoch=None, start=0):
    batches = loader.iterate(epoch, start) if epoch is not None else loader
    return [x[:, 0, 0, 0].astype(int).tolist() for x, _ in batches]


def test_loader_covers_each_sample_once():
    ds = CountingDataset(50)
    loader = DataLoader(ds, batch_size=16, shuffle=True, seed=0)
    batches = values(loader)
    assert [len(b) for b in batches] == [16, 16, 16, 2] and len(loader) == 4
    assert sorted(sum(batches, [])) == list(range(50)) and sum(batches, []) != list(range(50))
    dropped = DataLoader(ds, batch_size=16, drop_last=True)
    assert len(dropped) == 3 and [len(b) for b in values(dropped)] == [16, 16, 16]
    assert sum(values(DataLoader(ds, batch_size=7)), []) == list(range(50))   # no shuffle: in order


def test_loader_is_deterministic_per_seed_and_epoch():
    ds = CountingDataset(40)
    a = DataLoader(ds, 8, shuffle=True, seed=1, transform=T.RandomCrop(1, padding=1))
    b = DataLoader(ds, 8, shuffle=True, seed=1, transform=T.RandomCrop(1, padding=1))
    first, second = values(a), values(a)                        # two epochs: different orders
    assert first != second and a.epoch == 2
    assert values(b) == first and values(b) == second           # same seed, same batches
    assert values(DataLoader(ds, 8, shuffle=True, seed=2)) != first
    assert values(a, epoch=1, start=2) == second[2:]            # resuming mid-epoch sees the same batches


def test_prefetch_runs_in_the_background_and_matches_inline():
    ds = CountingDataset(40)
    kwargs = dict(batch_size=8, shuffle=True, seed=3, transform=T.Compose([T.RandomCrop(1, padding=1)]))
    background = values(DataLoader(ds, prefetch=2, **kwargs))
    assert set(ds.threads) == {"tinyresnet-prefetch"}
    ds.threads.clear()
    inline = values(DataLoader(ds, prefetch=0, **kwargs))
    assert set(ds.threads) == {threading.current_thread().name} and inline == background


def test_prefetch_errors_reach_the_caller_and_early_exit_stops_the_thread():
    with pytest.raises(RuntimeError, match="disk on fire"):
        values(DataLoader(CountingDataset(40, fail_at=2), batch_size=8))
    before = threading.active_count()
    loader = DataLoader(CountingDataset(400), batch_size=4, prefetch=3)
    for i, _ in enumerate(loader):
        if i == 2:
            break
    import gc
    gc.collect()                                                # closes the abandoned generator
    assert threading.active_count() == before


def test_loader_device(device):
    x, y = next(iter(DataLoader(CountingDataset(10), batch_size=4, device=device)))
    from tinyresnet.backend import device_of
    assert device_of(x) == device and device_of(y) == device
