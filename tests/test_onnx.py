"""ONNX export (``tinyresnet.onnx``, ``tinyresnet export``): each model runs in onnxruntime and gives
tinyresnet's logits (eval mode, float32), at the traced batch size and at another (dynamic batch)."""

import os
import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="ONNX export tests need onnx: pip install 'tinyresnet[onnx]'")
pytest.importorskip("onnxruntime", reason="ONNX export tests need onnxruntime: pip install 'tinyresnet[onnx]'")

import tinyresnet  # noqa: E402
from tinyresnet import models  # noqa: E402
from tinyresnet import onnx as tonnx  # noqa: E402
from tinyresnet.cli import main  # noqa: E402
from tinyresnet.nn import BatchNorm2d, Module  # noqa: E402
from tinyresnet.training.inference import load_trained_model  # noqa: E402

TOLERANCE = 1e-4            # max |difference| <= TOLERANCE · max |logit|

MODELS = {
    "resnet20": (lambda: models.resnet20(), 32),
    "resnet18-imagenet-stem": (lambda: models.resnet18(num_classes=10), 64),
    "resnet18-cifar-stem": (lambda: models.resnet18(num_classes=10, stem="cifar"), 32),
    "resnet50": (lambda: models.resnet50(num_classes=10), 64),
    "wrn-16-2": (lambda: models.WideResNet(16, 2, num_classes=10), 32),
    "densenet121": (lambda: models.densenet121(num_classes=10), 64),
}


def randomize_batch_norm(model, seed=0):
    """Running statistics and affine parameters away from 0/1, so that eval-mode BN really counts."""
    rng = np.random.default_rng(seed)
    for m in model.modules():
        if isinstance(m, BatchNorm2d):
            c = m.num_features
            m.running_mean[...] = rng.normal(0, 0.1, c)
            m.running_var[...] = rng.uniform(0.5, 1.5, c)
            m.weight.data[...] = rng.uniform(0.5, 1.5, c)
            m.bias.data[...] = rng.normal(0, 0.1, c)
    return model


def images(batch, size, channels=3, seed=0):
    return np.random.default_rng(seed).standard_normal((batch, channels, size, size)).astype(np.float32)


def assert_close(model, path, x):
    difference, largest = tonnx.verify(model, path, x)
    assert difference <= TOLERANCE * largest, f"max |diff| {difference:.3g} for max |logit| {largest:.3g}"
    return difference / largest


@pytest.mark.parametrize("name", list(MODELS))
def test_model_matches_onnxruntime(name, tmp_path):
    build, size = MODELS[name]
    model = randomize_batch_norm(build())
    path = tmp_path / f"{name}.onnx"
    proto = tonnx.export(model, images(2, size), path)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    assert proto.opset_import[0].version >= 17
    batch_dim = proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param == "batch"
    relative_2 = assert_close(model, path, images(2, size, seed=1))       # the traced batch size
    relative_3 = assert_close(model, path, images(3, size, seed=2))       # the dynamic batch dim
    print(f"{name}: max |diff| / max |logit| = {relative_2:.2g} (batch 2), {relative_3:.2g} (batch 3)")


def test_initializers_carry_state_dict_names_and_model_mode_is_kept(tmp_path):
    model = models.resnet20().train()
    model.layer1.eval()                                   # a mixed mode must come back as it was
    proto = tonnx.export(model, images(2, 32), tmp_path / "r20.onnx")
    names = {init.name for init in proto.graph.initializer}
    assert {"conv1.weight", "bn1.running_mean", "bn1.running_var", "layer3.2.conv2.weight", "fc.bias"} <= names
    ops = {node.op_type for node in proto.graph.node}
    assert {"Conv", "BatchNormalization", "Relu", "Add", "Slice", "Pad", "GlobalAveragePool", "Flatten",
            "Gemm"} <= ops                               # ResNet-20's type-A shortcuts: Slice + Pad
    assert model.training and model.layer2.training and not model.layer1.training
    assert not model.layer1[0].bn1.training


def test_plain_tier_exports_too(tmp_path):
    model = randomize_batch_norm(models.resnet20())
    with tinyresnet.use_kernels("plain"):
        tonnx.export(model, images(2, 32), tmp_path / "plain.onnx")
    assert_close(model, tmp_path / "plain.onnx", images(4, 32, seed=3))


def test_static_batch(tmp_path):
    model = models.resnet20(in_channels=1)
    proto = tonnx.export(model, images(4, 16, channels=1), tmp_path / "static.onnx", dynamic_batch=False)
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 4
    assert_close(model, tmp_path / "static.onnx", images(4, 16, channels=1, seed=5))


class MeanPoolNet(Module):
    def forward(self, x):
        return x.mean(axis=(2, 3))


def test_unsupported_op_is_named(tmp_path):
    with pytest.raises(tonnx.UnsupportedOperation, match=r"MeanFunction.*Supported ops: .*Conv2dFunction"):
        tonnx.export(MeanPoolNet(), images(2, 8), tmp_path / "mean.onnx")
    assert not (tmp_path / "mean.onnx").exists()


def test_bad_arguments(tmp_path):
    model = models.resnet20()
    with pytest.raises(ValueError, match="opset=13 is not supported; use an opset from 17"):
        tonnx.export(model, images(2, 32), tmp_path / "m.onnx", opset=13)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\), got shape \(3, 32, 32\)"):
        tonnx.export(model, images(1, 32)[0], tmp_path / "m.onnx")


def test_missing_onnx_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnx", None)        # `import onnx` now raises ImportError
    with pytest.raises(ImportError, match=r"pip install \"tinyresnet\[onnx\]\""):
        tonnx.export(models.resnet20(), images(2, 32), tmp_path / "m.onnx")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """One epoch of ResNet-20 on synthetic data through the CLI (as tests/test_cli_train.py)."""
    folder = tmp_path_factory.mktemp("onnx-cli")
    out = folder / "run"
    assert main(["train", "--model", "resnet20", "--dataset", "synthetic", "--subset", "64", "--batch-size", "32",
                 "--quiet", "--epochs", "1", "--out", str(out)]) == 0
    return out / "best.npz"


def test_cli_export_of_a_checkpoint(checkpoint, tmp_path, capsys):
    path = tmp_path / "resnet20.onnx"
    assert main(["export", str(checkpoint), str(path)]) == 0
    out = capsys.readouterr().out
    assert f"wrote {path}" in out and "checked in onnxruntime on a batch of 3" in out
    model, info = load_trained_model(str(checkpoint))
    proto = onnx.load(str(path))
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", *info["image_shape"]]
    props = {p.key: p.value for p in proto.metadata_props}
    assert props["name"] == '"resnet20"' and "mean" in props and "classes" in props
    assert_close(model, path, images(5, info["image_shape"][1], info["image_shape"][0], seed=7))


def test_cli_export_run_folder_static_batch_and_errors(checkpoint, tmp_path, capsys):
    path = tmp_path / "static.onnx"
    assert main(["export", str(checkpoint.parent), str(path), "--static-batch", "1", "--no-verify"]) == 0
    assert "input (1, " in capsys.readouterr().out
    assert os.path.getsize(path) > 0
    assert main(["export", str(checkpoint), str(tmp_path / "m.onnx"), "--opset", "12"]) == 1
    assert "opset=12 is not supported" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "missing.npz"), str(tmp_path / "m.onnx")]) == 1
    assert "missing.npz" in capsys.readouterr().err
