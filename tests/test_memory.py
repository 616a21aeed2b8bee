"""The check before a training step that cannot fit: an estimate from a probe batch, linear in the
batch size, and a message with the need, what is available, and the largest batch that fits."""

import numpy as np
import pytest

import tinyresnet.training.loop as loop
from tinyresnet import models
from tinyresnet.cli import main
from tinyresnet.training.memory import GIB, available_bytes, check_step_fits, estimate_step_bytes


def test_the_estimate_grows_linearly_with_the_batch_and_counts_weights_once():
    model = models.resnet20(num_classes=10)
    weights = sum(p.data.nbytes for p in model.parameters())
    t1, per_image, fixed = estimate_step_bytes(model, (3, 32, 32), 1)
    t64, _, _ = estimate_step_bytes(model, (3, 32, 32), 64)
    assert fixed == 3 * weights                                   # weights, gradients, one momentum buffer
    assert t64 - fixed == pytest.approx(64 * (t1 - fixed), rel=1e-6)
    # every conv of ResNet-20 keeps at least its 16..64-channel input per image: a lower bound
    assert per_image > 4 * (16 * 32 * 32 * 7 + 32 * 16 * 16 * 6 + 64 * 8 * 8 * 6)


def test_the_probe_leaves_the_batch_norm_statistics_as_they_were():
    model = models.resnet20(num_classes=10)
    before = {k: v.copy() for k, v in model.state_dict().items()}
    estimate_step_bytes(model.eval(), (3, 32, 32), 8)
    assert not model.training
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[key], err_msg=key)


def test_a_step_that_cannot_fit_names_the_need_and_the_largest_batch_that_fits():
    model = models.resnet20(num_classes=10)
    need, per_image, fixed = estimate_step_bytes(model, (3, 32, 32), 128)
    available = fixed + 50.5 * per_image
    with pytest.raises(MemoryError) as err:
        check_step_fits(model, (3, 32, 32), 128, available=available)
    message = str(err.value)
    assert f"{need / GIB:.1f} GiB" in message and "batch 128" in message and "--batch-size 50" in message
    assert check_step_fits(model, (3, 32, 32), 50, available=available) <= available      # and 50 does fit
    with pytest.raises(MemoryError, match="not even one image fits"):
        check_step_fits(model, (3, 32, 32), 4, available=fixed / 2)


def test_available_memory_is_read_on_linux():
    available = available_bytes()
    assert available is None or available > 0


def test_train_stops_before_the_first_step_with_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(loop, "check_step_fits", lambda model, shape, batch, buffers, device:
                        check_step_fits(model, shape, batch, buffers, device, available=1 << 20))
    out = tmp_path / "run"
    code = main(["train", "--dataset", "synthetic", "--subset", "64", "--epochs", "1", "--quiet", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "needs about" in err and "not even one image fits" in err
    assert not (out / "last.npz").exists()
