"""tinyresnet.use_kernels: the switch between the plain ops and the fast kernels, for the process, for a
block, and from the environment at start-up; and the two tiers training ResNet-20 alike."""

import os
import subprocess
import sys

import numpy as np
import pytest

import tinyresnet
from tinyresnet import kernels, tiers
from tinyresnet.ops.conv import Conv2dFunction
from tinyresnet.ops.pool import AvgPool2dFunction


def test_use_kernels_for_the_process_and_as_a_block():
    assert tinyresnet.get_kernels() == "fast" and tiers.implementation(Conv2dFunction) is kernels.FastConv2dFunction
    assert tiers.implementation(AvgPool2dFunction) is AvgPool2dFunction           # no fast kernel: the plain op
    with tinyresnet.use_kernels("plain"):
        assert tinyresnet.get_kernels() == "plain" and tiers.implementation(Conv2dFunction) is Conv2dFunction
        with tinyresnet.use_kernels("fast"):
            assert tiers.implementation(Conv2dFunction) is kernels.FastConv2dFunction
        assert tinyresnet.get_kernels() == "plain"
    assert tinyresnet.get_kernels() == "fast"
    tinyresnet.use_kernels("plain")                                               # for good, until changed
    try:
        assert tinyresnet.get_kernels() == "plain"
    finally:
        tinyresnet.use_kernels("fast")


@pytest.mark.parametrize("bad", ["Plain", "slow", "", None])
def test_an_unknown_tier_fails_naming_the_choices(bad):
    with pytest.raises(ValueError, match=r"unknown kernel tier .*'plain'.*'fast'"):
        tinyresnet.use_kernels(bad)
    assert tinyresnet.get_kernels() == "fast"


def _python(code, value):
    env = dict(os.environ, TINYRESNET_KERNELS=value)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)


def test_the_environment_variable_chooses_the_tier_at_start_up():
    code = "import tinyresnet; print(tinyresnet.get_kernels())"
    assert _python(code, "plain").stdout.strip() == "plain"
    assert _python(code, "fast").stdout.strip() == "fast"
    bad = _python(code, "turbo")
    assert bad.returncode != 0 and "TINYRESNET_KERNELS" in bad.stderr and "'turbo'" in bad.stderr


def _then_float64(transform):
    return lambda x, rng=None: transform(x, rng=rng).astype(np.float64)


def _train(tier, out, epochs, float64):
    """ResNet-20 on the digits (the default run) on one tier: the loss of every step, the history and the weights."""
    from tinyresnet.training import TrainConfig, Trainer
    losses = []
    with tinyresnet.use_kernels(tier):
        trainer = Trainer(TrainConfig(epochs=epochs, out=str(out / tier), progress=False))
        if float64:                      # the model and its batches in float64 (one dtype per layer)
            trainer.model.double()
            for loader in (trainer.train_loader, trainer.test_loader):
                loader.transform = _then_float64(loader.transform)
        result = trainer.fit(on_step=lambda epoch, step, loss: losses.append(loss))
    return np.array(losses), result.history, trainer.model.state_dict()


@pytest.mark.slow
def test_plain_and_fast_train_resnet20_alike_over_two_epochs_on_the_digits(tmp_path):
    """The same ResNet-20 run on the digits, 2 epochs (46 steps at lr 0.1), on each tier. In float64 the two
    agree at every step and in every weight to 1e-10 (measured: 5e-13), far inside float32 precision. In
    float32 each tier rounds its own way, and training at lr 0.1 amplifies any difference in the last bits;
    so each float32 run is compared with the float64 one. The fast tier's batch norm sums in float64
    (per-chunk float32 sums added in float64) and stays within 4e-7 of float64 over the first 6 steps
    (measured); the plain tier's float32 sums drift sooner (2e-6 at step 2, 7e-4 at step 3)."""
    plain_losses, plain_history, plain_state = _train("plain", tmp_path / "64", 2, float64=True)
    fast_losses, fast_history, fast_state = _train("fast", tmp_path / "64", 2, float64=True)
    assert len(plain_losses) == len(fast_losses) == 46
    np.testing.assert_allclose(fast_losses, plain_losses, rtol=1e-10, atol=0)
    for p, f in zip(plain_history, fast_history):
        assert p["test_acc"] == f["test_acc"]
        np.testing.assert_allclose([f["train_loss"], f["test_loss"]], [p["train_loss"], p["test_loss"]], rtol=1e-10)
    for key, value in plain_state.items():
        np.testing.assert_allclose(fast_state[key], value, rtol=1e-10, atol=1e-10 * float(np.abs(value).max()))
    plain32, _, _ = _train("plain", tmp_path / "32", 1, float64=False)
    fast32, _, _ = _train("fast", tmp_path / "32", 1, float64=False)
    np.testing.assert_allclose(fast32[:5], plain_losses[:5], rtol=1e-5, atol=0)
    np.testing.assert_allclose(plain32[:2], plain_losses[:2], rtol=1e-5, atol=0)
