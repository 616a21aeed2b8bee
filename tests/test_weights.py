"""Saving and loading weights as .npz, and converting PyTorch checkpoints with `tinyresnet convert-torch`."""

import os
import sys

import numpy as np
import pytest

import tinyresnet.serialization as serialization
from tinyresnet import models, nn
from tinyresnet.cli import main
from tinyresnet.nn import init


def trained_resnet20(seed):
    """A resnet20 with its own weights and non-trivial BN statistics."""
    init.manual_seed(seed)
    model = models.resnet20()
    model(np.random.default_rng(seed).standard_normal((2, 3, 8, 8)).astype(np.float32))
    return model


def assert_same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        np.testing.assert_array_equal(sa[k], sb[k], err_msg=k)


def test_save_and_load_round_trip(tmp_path, rng):
    src, dst = trained_resnet20(1), trained_resnet20(2)
    path = tmp_path / "run" / "resnet20.npz"                   # missing folders are created
    src.save(path)
    dst.load(path)
    assert_same_state(src, dst)
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(src.eval()(x).data, dst.eval()(x).data)
    assert int(dst.bn1.num_batches_tracked) == 1
    other = trained_resnet20(3)
    nn.save(other, path)                                        # the function forms
    nn.load(dst, path)
    assert_same_state(other, dst)


def test_interrupted_save_keeps_the_previous_file(tmp_path, monkeypatch):
    model = trained_resnet20(1)
    path = tmp_path / "model.npz"
    model.save(path)

    def fail_halfway(f, **arrays):
        f.write(b"PK\x03\x04 half a zip file")
        raise KeyboardInterrupt

    monkeypatch.setattr(serialization.np, "savez", fail_halfway)
    with pytest.raises(KeyboardInterrupt):
        trained_resnet20(2).save(path)
    monkeypatch.undo()
    restored = models.resnet20()
    restored.load(path)
    assert_same_state(model, restored)
    assert os.listdir(tmp_path) == ["model.npz"]                 # no temporary file left behind


def test_loading_into_a_different_model_names_keys_and_shapes(tmp_path):
    path = tmp_path / "ten.npz"
    models.resnet20(num_classes=10).save(path)
    model = models.resnet20(num_classes=5)
    before = model.state_dict()
    with pytest.raises(RuntimeError) as info:
        model.load(path)
    message = str(info.value)
    assert "fc.weight: checkpoint has shape (10, 64), this model has (5, 64)" in message
    assert "fc.bias: checkpoint has shape (10,), this model has (5,)" in message
    assert "num_classes" in message
    for k, v in model.state_dict().items():                      # a failed load changes nothing
        np.testing.assert_array_equal(v, before[k])
    partial = {k: v for k, v in models.resnet20().state_dict().items() if not k.startswith("layer3.1.")}
    with pytest.raises(RuntimeError, match=r"missing keys \(10\): layer3\.1\.conv1\.weight"):
        models.resnet20().load_state_dict(partial)


def test_unexpected_keys_and_strict_false(tmp_path):
    projected = models.resnet20(shortcut="B").state_dict()     # has layer2.0.downsample.* projections
    model = models.resnet20()
    with pytest.raises(RuntimeError, match=r"unexpected keys \(12\): layer2\.0\.downsample\.0\.weight"):
        model.load_state_dict(projected)
    result = model.load_state_dict(projected, strict=False)
    assert result.missing_keys == [] and len(result.unexpected_keys) == 12
    np.testing.assert_array_equal(model.conv1.weight.data, projected["conv1.weight"])


def test_missing_file_and_damaged_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        models.resnet20().load(tmp_path / "nothing.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable .npz"):
        models.resnet20().load(bad)


# --------------------------------------------------------------------------- convert-torch
def test_convert_torch_checkpoint(tmp_path, capsys):
    torch = pytest.importorskip("torch", reason="convert-torch reads .pth files with PyTorch (pip install torch)")
    source = trained_resnet20(4)
    # as a training script saves it: wrapped, with DataParallel's "module." prefix
    wrapped = {"epoch": 3, "state_dict": {f"module.{k}": torch.from_numpy(v) for k, v in source.state_dict().items()}}
    pth, out = tmp_path / "ckpt.pth", tmp_path / "ckpt.npz"
    torch.save(wrapped, pth)
    assert main(["convert-torch", str(pth), str(out), "--model", "resnet20"]) == 0
    assert f"wrote {len(source.state_dict())} arrays" in capsys.readouterr().out
    restored = models.resnet20()
    restored.load(out, strict=True)
    assert_same_state(source, restored)

    assert main(["convert-torch", str(pth), str(tmp_path / "no.npz"), "--model", "resnet32"]) == 1
    assert "missing keys" in capsys.readouterr().out
    assert not (tmp_path / "no.npz").exists()
    torch.save(torch.nn.Linear(2, 2), tmp_path / "whole.pth")     # a pickled module, not a state_dict
    assert main(["convert-torch", str(tmp_path / "whole.pth"), str(tmp_path / "w.npz")]) == 1
    assert "error" in capsys.readouterr().out


def test_convert_torch_without_torch_says_how_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)              # makes `import torch` fail
    assert main(["convert-torch", str(tmp_path / "a.pth"), str(tmp_path / "a.npz")]) == 1
    out = capsys.readouterr().out
    assert "needs PyTorch" in out and "pip install torch" in out
