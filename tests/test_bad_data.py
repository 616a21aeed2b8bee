"""Bad data and bad numbers fail with a clear error instead of a silently wrong run: empty datasets and
class folders, 16-bit and transparent images, oversized images, and out-of-range settings."""

import math
import os
import pickle

import numpy as np
import pytest
from PIL import Image

from tinyresnet.assignment import GradingError, check, grade
from tinyresnet.cli import main
from tinyresnet.data import ArrayDataset, ImageFolder, get_dataset, read_image
from tinyresnet.training import TrainConfig

QUICK = ["--model", "resnet20", "--dataset", "synthetic", "--subset", "16", "--batch-size", "16", "--epochs", "1",
         "--quiet"]


def write_png(path, array):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(array).save(path)
    return str(path)


def flat_folder(root, counts, size=4):
    """An image folder with ``counts[name]`` flat grey PNGs in each class subfolder ``root/name``."""
    for name, count in counts.items():
        os.makedirs(root / name, exist_ok=True)
        for i in range(count):
            write_png(str(root / name / f"{i}.png"), np.full((size, size), 20 * i, np.uint8))
    return str(root)


# ---------------------------------------------------------------------------------------------- empty data
@pytest.mark.parametrize("subset", [-5, 0])
def test_a_subset_below_one_is_refused(subset):
    with pytest.raises(ValueError, match=f"--subset must be at least 1.*got {subset}"):
        TrainConfig(subset=subset)


def test_an_empty_dataset_has_no_channel_stats():
    empty = ArrayDataset(np.zeros((0, 1, 4, 4), np.uint8), np.zeros(0, np.int64), ["a"], name="nothing")
    with pytest.raises(ValueError, match="nothing: the dataset has no images"):
        empty.channel_stats()


def test_nan_pixels_are_refused_by_channel_stats():
    images = np.full((3, 1, 4, 4), 0.5, np.float32)
    images[1, 0, 2, 2] = np.nan
    with pytest.raises(ValueError, match="pixels-with-nan: some pixel values are NaN or infinite"):
        ArrayDataset(images, np.zeros(3, np.int64), ["a"], name="pixels-with-nan").channel_stats()


def test_an_image_folder_too_small_to_leave_test_images(tmp_path, capsys):
    root = flat_folder(tmp_path / "tiny", {"a": 2, "b": 2})       # 20% of 2 rounds to 0: no test images
    with pytest.raises(ValueError, match="leaves no test images") as e:
        get_dataset("imagefolder", root, image_size=4)
    assert root in str(e.value) and "at least 3 per class" in str(e.value)
    assert main(["train", "--dataset", "imagefolder", "--data-dir", root, "--image-size", "4", "--epochs", "1",
                 "--quiet", "--out", str(tmp_path / "run")]) == 1
    assert "leaves no test images" in capsys.readouterr().err


def test_cifar_batches_without_images(tmp_path):
    batch = {b"data": np.zeros((0, 3072), np.uint8), b"labels": []}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (tmp_path / name).write_bytes(pickle.dumps(batch))
    with pytest.raises(ValueError, match="the cifar10 dataset from .* has no training images"):
        get_dataset("cifar10", str(tmp_path))


def test_an_empty_class_folder_is_refused(tmp_path):
    root = flat_folder(tmp_path / "pets", {"cat": 2, "dog": 0, "eel": 0, "owl": 1})
    with pytest.raises(FileNotFoundError, match="2 class folder") as e:
        ImageFolder(root, image_size=4)
    message = str(e.value)
    assert os.path.join(root, "dog") in message and os.path.join(root, "eel") in message
    assert os.path.join(root, "cat") not in message and "remove the empty ones or add images" in message


def test_an_empty_class_folder_in_the_test_split(tmp_path, capsys):
    flat_folder(tmp_path / "data" / "train", {"cat": 2, "dog": 2})
    flat_folder(tmp_path / "data" / "test", {"cat": 1, "dog": 0})
    assert main(["train", "--dataset", "imagefolder", "--data-dir", str(tmp_path / "data"), "--image-size", "4",
                 "--epochs", "1", "--quiet", "--out", str(tmp_path / "run")]) == 1
    assert os.path.join("test", "dog") in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- pixel formats
def test_16_bit_greyscale_is_scaled_not_clipped(tmp_path):
    ramp = np.linspace(0, 65535, 6 * 40).round().astype(np.uint16).reshape(6, 40)
    deep = write_png(tmp_path / "deep.png", ramp)
    with Image.open(deep) as img:
        assert img.mode in ("I;16", "I;16B", "I;16L", "I")          # the file really is 16-bit
    eight = write_png(tmp_path / "eight.png", np.round(ramp / 65535 * 255).astype(np.uint8))
    for channels in (1, 3):
        got, want = read_image(deep, channels=channels).astype(int), read_image(eight, channels=channels).astype(int)
        assert got.shape == want.shape and np.abs(got - want).max() <= 1
    assert read_image(deep, channels=1)[0, 0, 0] == 0 and read_image(deep, channels=1)[0, -1, -1] == 255


def strokes():
    """A 12×12 drawing: True on a cross of strokes, False elsewhere."""
    ink = np.zeros((12, 12), bool)
    ink[5:7, :] = ink[:, 5:7] = True
    return ink


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_black_strokes_on_transparent_become_black_on_white(tmp_path, mode):
    ink = strokes()
    alpha = np.where(ink, 255, 0).astype(np.uint8)
    path, options = str(tmp_path / f"drawing-{mode}.png"), {}
    if mode == "RGBA":      # (0, 0, 0, 0) off the strokes
        img = Image.fromarray(np.dstack([np.zeros((12, 12, 3), np.uint8), alpha]))
    elif mode == "LA":
        img = Image.fromarray(np.dstack([np.zeros((12, 12), np.uint8), alpha]))
    else:                   # a palette picture: entry 0 opaque black, entry 1 transparent black
        img = Image.frombytes("P", (12, 12), np.where(ink, 0, 1).astype(np.uint8).tobytes())
        img.putpalette([0, 0, 0, 0, 0, 0])
        options = {"transparency": 1}
    assert img.mode == mode
    img.save(path, **options)
    for channels in (1, 3):
        pixels = read_image(path, channels=channels)
        assert (pixels[:, ink] == 0).all() and (pixels[:, ~ink] == 255).all()


def test_half_transparent_ink_is_grey(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 3] = 128                                             # black at half opacity over white paper
    path = write_png(tmp_path / "half.png", rgba)
    assert abs(int(read_image(path, channels=1)[0, 0, 0]) - 127) <= 1


# ---------------------------------------------------------------------------------------------- huge images
@pytest.fixture
def small_bomb_limit(monkeypatch):
    """Pillow's decompression-bomb limit lowered to 100 pixels: warned above 100, refused above 200."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)


@pytest.mark.parametrize("side", [12, 20])          # 144 pixels: Pillow warns; 400: Pillow raises
def test_an_oversized_image_names_the_file_and_the_fix(tmp_path, small_bomb_limit, side):
    path = write_png(tmp_path / "huge.png", np.zeros((side, side), np.uint8))
    with pytest.raises(ValueError) as e:
        read_image(path, size=(4, 4))
    message = str(e.value)
    assert path in message and f"{side * side} pixels" in message and "MAX_IMAGE_PIXELS" in message


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("bad-data") / "run"
    assert main(["train", *QUICK, "--out", str(out)]) == 0
    return str(out / "best.npz")


def test_an_oversized_image_is_an_error_message_not_a_traceback(tmp_path, small_bomb_limit, checkpoint, capsys):
    huge = write_png(tmp_path / "data" / "a" / "huge.png", np.zeros((20, 20), np.uint8))
    capsys.readouterr()
    assert main(["predict", checkpoint, huge]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "huge.png" in err and "400 pixels" in err and "Traceback" not in err
    write_png(tmp_path / "data" / "b" / "small.png", np.zeros((4, 4), np.uint8))
    assert main(["train", "--dataset", "imagefolder", "--data-dir", str(tmp_path / "data"), "--image-size", "4",
                 "--epochs", "1", "--quiet", "--out", str(tmp_path / "run")]) == 1
    assert "huge.png" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- bad numbers
@pytest.mark.parametrize("setting, option, shown", [
    ({"lr": math.inf}, "--lr", "inf"),
    ({"lr": math.nan}, "--lr", "nan"),
    ({"lr": -0.1}, "--lr", "-0.1"),
    ({"image_size": 0}, "--image-size", "0"),
    ({"image_size": -8}, "--image-size", "-8"),
    ({"warmup_steps": -5}, "--warmup-steps", "-5"),
    ({"momentum": -0.9}, "--momentum", "-0.9"),
    ({"momentum": math.nan}, "--momentum", "nan"),
    ({"weight_decay": -1e-4}, "--weight-decay", "-0.0001"),
    ({"weight_decay": math.inf}, "--weight-decay", "inf"),
    ({"weight_decay": math.nan}, "--weight-decay", "nan"),
    ({"warmup_factor": 0.0}, "warmup_factor", "0.0"),
    ({"warmup_factor": 1.5}, "warmup_factor", "1.5"),
    ({"warmup_factor": math.nan}, "warmup_factor", "nan"),
    ({"gamma": 0.0}, "--gamma", "0.0"),
    ({"gamma": -0.1}, "--gamma", "-0.1"),
    ({"gamma": math.inf}, "--gamma", "inf"),
    ({"eval_batch_size": 0}, "eval_batch_size", "0"),
    ({"prefetch": -1}, "prefetch", "-1"),
    ({"milestones": (10, -3)}, "--milestones", "(10, -3)"),
    ({"epochs": 0}, "--epochs", "0"),
    ({"batch_size": -2}, "--batch-size", "-2"),
])
def test_bad_numbers_in_the_config_name_the_option_and_value(setting, option, shown):
    with pytest.raises(ValueError) as e:
        TrainConfig(**setting)
    message = str(e.value)
    assert message.startswith(option) and message.endswith(f"got {shown}")


def test_the_edges_of_the_allowed_ranges_are_accepted():
    TrainConfig(subset=1, image_size=1, warmup_steps=0, momentum=0.0, weight_decay=0.0, warmup_factor=1.0,
                gamma=1e-3, eval_batch_size=1, prefetch=0, milestones=(0, 5), lr=1e-6)


def test_train_rejects_an_infinite_learning_rate(tmp_path, capsys):
    assert main(["train", *QUICK, "--lr", "inf", "--out", str(tmp_path / "run")]) == 1
    assert "--lr" in (err := capsys.readouterr().err) and "got inf" in err
    assert not os.path.exists(tmp_path / "run")


@pytest.mark.parametrize("value", ["0", "-3"])
def test_evaluate_rejects_a_batch_size_below_one(value, capsys):
    with pytest.raises(SystemExit) as e:
        main(["evaluate", "no-such-run/best.npz", "--batch-size", value])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--batch-size" in err and f"must be at least 1, got {value}" in err


@pytest.mark.parametrize("action", ["grade", "check"])
@pytest.mark.parametrize("value", ["-5", "0", "nan", "inf"])
def test_assignment_rejects_a_bad_timeout(tmp_path, capsys, action, value):
    with pytest.raises(SystemExit) as e:
        main(["assignment", action, str(tmp_path), "--timeout", value])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--timeout" in err and f"got {value}" in err


@pytest.mark.parametrize("timeout", [-5, 0, math.nan, math.inf, "60"])
def test_grading_from_python_rejects_a_bad_timeout(tmp_path, timeout):
    for run in (check, grade):
        with pytest.raises(GradingError, match=f"timeout must be a positive, finite number.*got {timeout!r}"):
            run(tmp_path, timeout=timeout)
