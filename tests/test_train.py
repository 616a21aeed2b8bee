"""The training loop: run folder, exact resume (after an epoch and after Ctrl-C mid-epoch), NaN stop,
checkpoint damage, mismatched models, and the default config (ResNet-20 on digits) for one short epoch."""

import csv
import json
import os
import signal

import numpy as np
import pytest

import tinyresnet.training.loop as loop_module
from tinyresnet import nn
from tinyresnet.backend import gpu_available
from tinyresnet.optim import SGD
from tinyresnet.training import (
    TrainConfig,
    Trainer,
    TrainingDiverged,
    confusion_matrix,
    fit,
    format_confusion,
    load_checkpoint,
    load_model_state,
    load_trained_model,
    predict_proba,
    read_metrics,
    resume_config,
    train_step,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def tiny_net(config, num_classes, in_channels, width=6):
    """conv-BN-ReLU then a linear layer: small enough for tests, with BN buffers in its state_dict."""
    nn.init.manual_seed(config.seed)
    return nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
                         nn.Flatten(), nn.Linear(width * 8 * 8, num_classes))


@pytest.fixture
def tiny(monkeypatch, tmp_path):
    """A config on synthetic 8×8 data with the tiny net in place of the registered model."""
    monkeypatch.setattr(loop_module, "build_model", tiny_net)

    def make(name="run", **changes):
        settings = dict(model="tiny", dataset="synthetic", epochs=3, batch_size=32, lr=0.05, prefetch=1,
                        progress=False, out=str(tmp_path / name))
        return TrainConfig(**{**settings, **changes})
    return make


def weights(run_dir, name="last.npz"):
    return load_checkpoint(os.path.join(run_dir, name))["model"]


def assert_same_history(a, b):
    for row_a, row_b in zip(a, b, strict=True):
        for key in ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr"):
            assert row_a[key] == row_b[key], f"epoch {row_a['epoch']}: {key} {row_a[key]} != {row_b[key]}"


def test_fit_learns_and_writes_the_run_folder(tiny):
    result = fit(tiny(epochs=4))
    files = set(os.listdir(result.run_dir))
    assert {"last.npz", "best.npz", "metrics.csv", "curves.png", "config.json"} <= files
    assert not [f for f in files if f.startswith(".tmp")]
    rows = read_metrics(os.path.join(result.run_dir, "metrics.csv"))
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    for row, logged in zip(result.history, rows):
        assert row["test_acc"] == pytest.approx(logged["test_acc"]) and logged["images_per_s"] > 0
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert result.final_accuracy > 0.5                          # 10 classes: chance is 0.1
    lrs = [r["lr"] for r in rows]                               # the default cosine schedule over 4 epochs
    np.testing.assert_allclose(lrs, [0.05 * (1 + np.cos(np.pi * e / 4)) / 2 for e in range(4)], rtol=1e-9)
    best = load_checkpoint(os.path.join(result.run_dir, "best.npz"))["meta"]["state"]
    assert best["epoch"] == result.best_epoch and best["best_accuracy"] == result.best_accuracy
    with open(os.path.join(result.run_dir, "curves.png"), "rb") as f:
        assert f.read(8) == PNG_MAGIC
    assert json.load(open(os.path.join(result.run_dir, "config.json")))["epochs"] == 4


def test_resume_after_two_epochs_equals_three_straight(tiny):
    schedule = dict(schedule="multistep", milestones=(2,), gamma=0.5)   # independent of the epoch count
    straight = fit(tiny("straight", **schedule))
    fit(tiny("split", epochs=2, **schedule))
    resumed = fit(resume_config(tiny("split").out, epochs=3, progress=False, milestones=(2,)), resume=True)
    assert_same_history(resumed.history, straight.history)
    for key, value in weights(straight.run_dir).items():
        np.testing.assert_array_equal(weights(resumed.run_dir)[key], value, err_msg=key)
    assert len(read_metrics(os.path.join(resumed.run_dir, "metrics.csv"))) == 3


def test_ctrl_c_mid_epoch_saves_and_resume_is_exact(tiny):
    straight = fit(tiny("straight", warmup_steps=4))

    def press_ctrl_c(epoch, step, loss):
        if (epoch, step) == (1, 2):
            os.kill(os.getpid(), signal.SIGINT)                 # what Ctrl-C sends

    stopped = fit(tiny("split", warmup_steps=4), on_step=press_ctrl_c)
    assert stopped.interrupted and len(stopped.history) == 1
    meta = load_checkpoint(os.path.join(stopped.run_dir, "last.npz"))["meta"]
    assert meta["interrupted"] and meta["state"]["epoch"] == 1 and meta["state"]["step"] == 3
    resumed = fit(tiny("split", warmup_steps=4), resume=True)
    assert not resumed.interrupted
    assert_same_history(resumed.history, straight.history)
    for key, value in weights(straight.run_dir).items():
        np.testing.assert_array_equal(weights(resumed.run_dir)[key], value, err_msg=key)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tiny):
    trainer = Trainer(tiny())

    def poison(epoch, step, loss):
        if (epoch, step) == (1, 0):                              # after epoch 1 was saved
            next(iter(trainer.model.parameters())).data[...] = np.nan

    with pytest.raises(TrainingDiverged) as err:
        trainer.fit(on_step=poison)
    message = str(err.value)
    assert "nan" in message and "epoch 2, step 2" in message and "lower learning rate" in message
    assert "--lr 0.005" in message and "last.npz" in message
    saved = load_checkpoint(os.path.join(tiny().out, "last.npz"))
    assert saved["meta"]["state"]["epoch"] == 1
    assert all(np.isfinite(v).all() for v in saved["model"].values())
    assert os.path.exists(os.path.join(tiny().out, "curves.png"))


def test_run_folder_guards(tiny):
    fit(tiny(epochs=1))
    with pytest.raises(FileExistsError, match="--resume"):
        fit(tiny(epochs=1))
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        fit(tiny("other"), resume=True)
    with pytest.raises(ValueError, match=r"lr=0\.2 \(the run has 0\.05\)"):
        fit(tiny(epochs=2, lr=0.2), resume=True)
    with pytest.raises(ValueError, match=r"batch_size=8 \(the run has 32\)"):
        resume_config(tiny().out, batch_size=8)
    with pytest.raises(ValueError, match="already trained 1 epochs"):
        fit(tiny(epochs=1), resume=True)


def test_truncated_checkpoint_is_detected_and_a_failed_save_keeps_the_old_one(tiny, monkeypatch):
    run_dir = fit(tiny(epochs=1)).run_dir
    last = os.path.join(run_dir, "last.npz")
    good = open(last, "rb").read()
    cut = os.path.join(run_dir, "cut.npz")
    with open(cut, "wb") as f:
        f.write(good[: len(good) // 2])
    with pytest.raises(ValueError, match="cut.npz.*truncated or corrupt"):
        load_checkpoint(cut)

    def crash(file, **arrays):                                  # dies halfway through writing
        file.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(OSError, match="disk full"):
        fit(tiny(epochs=2), resume=True)
    monkeypatch.undo()
    assert open(last, "rb").read() == good
    assert load_checkpoint(last)["meta"]["state"]["epoch"] == 1
    assert not [f for f in os.listdir(run_dir) if f.startswith(".tmp")]


def test_checkpoint_of_another_model_names_the_keys_and_leaves_the_model_as_it_was(tiny):
    run_dir = fit(tiny(epochs=1)).run_dir
    other = tiny_net(tiny(), num_classes=10, in_channels=1, width=4)
    before = other.state_dict()
    with pytest.raises(ValueError) as err:
        load_model_state(other, weights(run_dir), "last.npz", "tiny")
    message = str(err.value)
    assert message.startswith("last.npz does not fit this Sequential:")
    assert "0.weight (checkpoint (6, 1, 3, 3), model (4, 1, 3, 3))" in message
    assert "1.running_mean" in message and "--model tiny" in message
    for key, value in other.state_dict().items():                 # checked before anything was written
        np.testing.assert_array_equal(value, before[key], err_msg=key)
    bigger = nn.Sequential(*list(other.children()), nn.ReLU(), nn.Linear(10, 10))
    with pytest.raises(ValueError, match=r"missing from the checkpoint \(2\): 6.weight, 6.bias"):
        load_model_state(bigger, {**weights(run_dir), **{k: v for k, v in other.state_dict().items()}}, "x", None)
    same = tiny_net(tiny(), num_classes=10, in_channels=1)
    assert load_model_state(same, weights(run_dir), "last.npz", "tiny").missing_keys == []
    for key, value in weights(run_dir).items():
        np.testing.assert_array_equal(same.state_dict()[key], value, err_msg=key)


def test_default_config_one_short_epoch(tmp_path):
    """The main job's config (ResNet-20, bundled digits) for one epoch on 128 images, then loading it back."""
    config = TrainConfig(out=str(tmp_path / "run"), epochs=1, subset=128, progress=False)
    assert (config.model, config.dataset) == ("resnet20", "digits")
    result = fit(config)
    row = result.history[0]
    assert np.isfinite(row["train_loss"]) and 0 <= row["test_acc"] <= 1
    model, info = load_trained_model(os.path.join(result.run_dir, "best.npz"))
    assert info["image_shape"] == [1, 8, 8] and info["classes"] == [str(k) for k in range(10)]
    images = np.random.default_rng(0).random((3, 1, 8, 8)).astype(np.float32)
    probabilities = predict_proba(model, images, info)
    assert probabilities.shape == (3, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-5)
    with pytest.raises(ValueError, match=r"(?s)missing from the checkpoint \(\d+\): layer1\.3\..*--model resnet20"):
        load_trained_model(os.path.join(result.run_dir, "best.npz"), model_name="resnet32")


@pytest.mark.skipif(gpu_available(), reason="checks the message shown when no GPU is present")
def test_cuda_without_gpu_fails_clearly(tiny):
    with pytest.raises(RuntimeError, match="device 'cuda' requested but .*use device='cpu'"):
        fit(tiny(device="cuda"))


def test_confusion_matrix():
    counts = confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 2, 0], 3)
    np.testing.assert_array_equal(counts, [[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    table = format_confusion(counts, ["a", "b", "c"]).splitlines()
    assert len(table) == 4 and table[3].split() == ["c", "1", "0", "2"]


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="unknown schedule 'linear'"):
        TrainConfig(schedule="linear")
    with pytest.raises(ValueError, match="learning rate must be positive"):
        TrainConfig(lr=0)


def test_metrics_csv_header(tiny):
    run_dir = fit(tiny(epochs=1)).run_dir
    with open(os.path.join(run_dir, "metrics.csv")) as f:
        header = next(csv.reader(f))
    assert header == ["epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "time_s", "images_per_s"]


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_loop_on_the_stand_in_gpu_matches_the_cpu(tiny, optimizer):
    """tests/fake_device.py's stand-in GPU refuses every silent trip to the host, as CuPy does: the loop,
    the optimisers' buffers, checkpoints and resume must all stay on the device and give the CPU's numbers."""
    fake_device = pytest.importorskip("fake_device", reason="the stand-in GPU of tests/fake_device.py is absent")
    settings = dict(epochs=2, optimizer=optimizer, warmup_steps=3, lr=0.05 if optimizer == "sgd" else 0.003)
    on_cpu = fit(tiny("cpu", **settings))
    with fake_device.use_fake_gpu():
        fit(tiny("gpu", device="cuda", **{**settings, "epochs": 1}))
        on_gpu = fit(tiny("gpu", device="cuda", **settings), resume=True)
    # the same numbers to float32 rounding: on a GPU each conv is one product over the batch, on the CPU
    # its weight gradient is summed over the threads' slices, which rounds in another order
    for gpu_row, cpu_row in zip(on_gpu.history, on_cpu.history, strict=True):
        assert gpu_row["epoch"] == cpu_row["epoch"] and gpu_row["lr"] == cpu_row["lr"]
        for key in ("train_loss", "train_acc", "test_loss", "test_acc"):
            assert gpu_row[key] == pytest.approx(cpu_row[key], rel=1e-5), (gpu_row["epoch"], key)


def test_train_step_takes_one_step_and_a_non_finite_loss_changes_no_weight():
    nn.init.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    optimizer = SGD(model.parameters(), lr=0.1)
    x = np.random.default_rng(0).standard_normal((5, 1, 2, 2)).astype(np.float32)
    y = np.array([0, 1, 2, 0, 1])
    before = model.state_dict()
    loss, correct = train_step(model, optimizer, x, y)
    assert isinstance(loss, float) and np.isfinite(loss) and isinstance(correct, int) and 0 <= correct <= 5
    assert not np.array_equal(model.state_dict()["1.weight"], before["1.weight"])
    stepped = model.state_dict()
    loss, correct = train_step(model, optimizer, np.full_like(x, np.nan), y)
    assert not np.isfinite(loss) and correct == 0
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, stepped[key], err_msg=key)


def test_building_a_trainer_changes_no_setting_and_fit_scopes_the_fast_kernels_threads(tiny, monkeypatch):
    """The settings of the process are scoped to ``fit`` (``tiers.compute_settings``), never changed by
    building an object: a Trainer leaves the fast kernels' thread count and BLAS's alone; during ``fit``
    the convolutions compute on as many threads of their own as BLAS had, BLAS on one; afterwards both
    are back. ``fit`` also has glibc keep freed memory, and then a new array costs no page faults."""
    import platform
    import resource

    from threadpoolctl import threadpool_info, threadpool_limits

    from tinyresnet import kernels, tiers

    def blas_threads():
        return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]

    kept = []
    keep_freed_memory = kernels.keep_freed_memory
    monkeypatch.setattr(kernels, "keep_freed_memory", lambda: kept.append(1) or keep_freed_memory())
    with tiers.use_kernels("fast"), threadpool_limits(2, user_api="blas"):   # BLAS on two threads before the run
        before = (kernels.get_num_threads(), blas_threads())
        if not before[1]:
            pytest.skip("threadpoolctl finds no BLAS library in this NumPy")
        trainer = Trainer(tiny(epochs=1))
        assert (kernels.get_num_threads(), blas_threads()) == before and kept == []
        during = []
        trainer.fit(on_step=lambda epoch, step, loss: during.append((kernels.get_num_threads(), blas_threads())))
        after = (kernels.get_num_threads(), blas_threads())
    assert during and all(seen == (2, [1] * len(before[1])) for seen in during), during
    assert after == before
    assert kept == [1]
    if not (platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"):
        assert keep_freed_memory() is False                        # elsewhere it does nothing
        pytest.skip("the allocator setting is for glibc only")
    assert keep_freed_memory() is True
    faults = []
    for _ in range(3):                  # three 16 MiB arrays (like a step's activations), freed, asked for again
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        arrays = [np.ones(1 << 22, dtype=np.float32) for _ in range(3)]
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
        del arrays
    # the first round may grow the heap; the later ones reuse its memory (glibc's default: 1,500+ faults each)
    assert faults[2] < 50, faults
