"""tinyresnet.models: exact parameter counts, torchvision key names, shortcuts, every model on small inputs."""

import ast
import inspect
import re

import numpy as np
import pytest

import tinyresnet as tr
from tinyresnet import functional as F
from tinyresnet import models
from tinyresnet.gradcheck import assert_gradcheck
from tinyresnet.models import blocks
from tinyresnet.nn import BatchNorm2d, init

# Parameter counts from torchvision (ImageNet nets, 1,000 classes) and the papers (CIFAR nets, 10 classes).
PARAMETERS = {
    "resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032, "resnet101": 44_549_160,
    "resnet152": 60_192_808, "resnext50_32x4d": 25_028_904, "densenet121": 7_978_856,
    "resnet20": 269_722, "resnet32": 464_154, "resnet44": 658_586, "resnet56": 853_018, "resnet110": 1_727_962,
    "plain20": 269_722, "plain32": 464_154, "plain44": 658_586, "plain56": 853_018, "plain110": 1_727_962,
    "wide_resnet28_10": 36_479_194,
}


def test_every_model_is_listed_and_counted():
    assert set(models.list_models()) == set(PARAMETERS)


@pytest.mark.parametrize("name", sorted(PARAMETERS))
def test_parameter_count_and_32x32_rgb(name, rng):
    """Counted at each builder's default class count (1,000 for ImageNet nets, 10 for CIFAR nets);
    the same model then classifies a 32×32 RGB image."""
    model = models.get_model(name)
    assert model.num_parameters() == PARAMETERS[name]
    with tr.no_grad():
        out = model.eval()(rng.standard_normal((1, 3, 32, 32)).astype(np.float32))
    assert out.shape == (1, model.num_classes) and np.all(np.isfinite(out.data))


def test_state_dict_keys_are_torchvisions():
    keys = list(models.resnet18().state_dict())
    assert len(keys) == 122                       # torchvision's resnet18, num_batches_tracked included
    assert keys[:6] == ["conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var",
                        "bn1.num_batches_tracked"]
    assert keys[-2:] == ["fc.weight", "fc.bias"]
    for key in ["layer1.0.conv1.weight", "layer1.1.bn2.running_var", "layer2.0.downsample.0.weight",
                "layer2.0.downsample.1.running_mean", "layer4.1.conv2.weight"]:
        assert key in keys
    assert not any("layer1.0.downsample" in k for k in keys)     # same shape: identity shortcut
    r50 = models.resnet50().state_dict()
    assert len(r50) == 320
    assert r50["layer1.0.downsample.0.weight"].shape == (256, 64, 1, 1)
    assert r50["layer2.0.conv2.weight"].shape == (128, 128, 3, 3)             # stride on the 3×3 conv
    assert r50["fc.weight"].shape == (1000, 2048)
    assert models.resnext50_32x4d().state_dict()["layer1.0.conv2.weight"].shape == (128, 4, 3, 3)
    dense = models.densenet121().state_dict()
    for key in ["features.conv0.weight", "features.norm0.running_mean", "features.denseblock1.denselayer1.norm1.weight",
                "features.denseblock4.denselayer16.conv2.weight", "features.transition3.conv.weight",
                "features.norm5.bias", "classifier.weight"]:
        assert key in dense, key


def test_shortcut_types_change_only_the_projections():
    """A has no parameters, B projects where the shape changes, C on every block (counted by hand)."""
    counts = {s: models.resnet20(shortcut=s).num_parameters() for s in "ABC"}
    assert counts["A"] == 269_722
    assert counts["B"] == counts["A"] + (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)
    same_shape = 3 * (16 * 16 + 2 * 16) + 2 * (32 * 32 + 2 * 32) + 2 * (64 * 64 + 2 * 64)
    assert counts["C"] == counts["B"] + same_shape
    r18 = {s: models.resnet18(shortcut=s).num_parameters() for s in "AC"}
    assert r18["A"] == 11_689_512 - (64 * 128 + 256) - (128 * 256 + 512) - (256 * 512 + 1024)
    assert r18["C"] == 11_689_512 + 2 * (64 * 64 + 128) + (128 * 128 + 256) + (256 * 256 + 512) + (512 * 512 + 1024)
    with pytest.raises(ValueError, match="unknown shortcut type 'D'"):
        models.resnet20(shortcut="D")


def test_cifar_stem_resnet18():
    """The "CIFAR ResNet-18": 3×3 stride-1 stem, no max-pool; 11,173,962 parameters at 10 classes."""
    model = models.get_model("resnet18", num_classes=10, stem="cifar")
    assert model.num_parameters() == 11_173_962
    assert model.conv1.weight.shape == (64, 3, 3, 3) and isinstance(model.maxpool, tr.nn.Identity)
    with tr.no_grad():
        assert model.eval()(np.zeros((1, 3, 32, 32), np.float32)).shape == (1, 10)


def test_shortcut_a_subsamples_and_pads_channels_with_zeros(rng):
    x = rng.standard_normal((2, 4, 5, 5))
    out = blocks.ShortcutA(4, 8, stride=2)(x).data
    assert out.shape == (2, 8, 3, 3)
    np.testing.assert_array_equal(out[:, 2:6], x[:, :, ::2, ::2])
    assert not out[:, :2].any() and not out[:, 6:].any()


def test_plain_nets_have_no_skips_and_the_same_weights_as_resnets():
    res, plain = models.resnet20().state_dict(), models.plain20().state_dict()
    assert {k: v.shape for k, v in res.items()} == {k: v.shape for k, v in plain.items()}
    assert all(b.downsample is None for b in models.plain20().modules() if isinstance(b, models.PlainBlock))
    with pytest.raises(ValueError, match="no shortcut"):
        models.PlainBlock(4, 8, 2, downsample=blocks.ShortcutA(4, 8, 2))


def test_plain_and_residual_blocks_differ_exactly_by_the_skip(rng):
    x = rng.standard_normal((2, 8, 6, 6), dtype=np.float32)
    init.manual_seed(1)
    res = models.BasicBlock(8, 8).eval()
    init.manual_seed(1)
    plain = models.PlainBlock(8, 8).eval()
    inner = res.bn2(res.conv2(res.relu(res.bn1(res.conv1(x))))).data
    np.testing.assert_allclose(res(x).data, np.maximum(inner + x, 0))
    np.testing.assert_allclose(plain(x).data, np.maximum(inner, 0))


@pytest.mark.parametrize("name, bn", [("resnet20", "bn2"), ("resnet50", "bn3")])
def test_zero_init_residual_makes_every_block_start_as_the_identity(name, bn, rng):
    model = models.get_model(name, zero_init_residual=True, num_classes=10).eval()
    residual_blocks = [m for m in model.modules() if isinstance(m, (models.BasicBlock, models.Bottleneck))]
    assert residual_blocks and all(not getattr(b, bn).weight.data.any() for b in residual_blocks)
    block = model.layer1[1]                   # stride 1, same width: out = relu(0 + x)
    x = rng.standard_normal((2, block.conv1.in_channels, 4, 4)).astype(np.float32)
    np.testing.assert_array_equal(block(x).data, np.maximum(x, 0))
    plain = models.plain20(zero_init_residual=True)            # a plain net would lose its signal: untouched
    assert all(b.bn2.weight.data.all() for b in plain.modules() if isinstance(b, models.PlainBlock))


def test_same_seed_same_model():
    init.manual_seed(11)
    a = models.resnet20().state_dict()
    init.manual_seed(11)
    b = models.resnet20().state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_conv_init_is_kaiming_fan_out_and_bn_is_one_zero():
    model = models.resnet18()
    w = model.layer3[1].conv2.weight.data                     # (256, 256, 3, 3): fan_out = 256·9
    assert abs(w.std() / np.sqrt(2 / (256 * 9)) - 1) < 0.02
    bns = [m for m in model.modules() if isinstance(m, BatchNorm2d)]
    assert all(np.all(b.weight.data == 1) and not b.bias.data.any() for b in bns)


# --------------------------------------------------------------------------- every model on small inputs
@pytest.mark.parametrize("name", sorted(PARAMETERS))
def test_every_model_runs_on_8x8_single_channel_digits(name, rng):
    model = models.get_model(name, num_classes=10, in_channels=1).eval()
    with tr.no_grad():
        out = model(rng.standard_normal((2, 1, 8, 8)).astype(np.float32))
    assert out.shape == (2, 10) and out.dtype == np.float32 and np.all(np.isfinite(out.data))


# one model per kind of block: basic, plain, bottleneck with groups, dense, pre-activation (the big
# builders' blocks are exercised in smaller nets of the same classes)
TRAINING_NETS = {
    "resnet18": lambda: models.resnet18(num_classes=10, in_channels=1),
    "resnet18-cifar-stem": lambda: models.resnet18(num_classes=10, in_channels=1, stem="cifar"),
    "resnet20": lambda: models.resnet20(in_channels=1),
    "plain20": lambda: models.plain20(in_channels=1),
    "resnext-grouped-bottlenecks": lambda: models.ResNet(models.Bottleneck, [1, 1, 1, 1], num_classes=10,
                                                         in_channels=1, groups=4, width_per_group=4),
    "densenet121": lambda: models.densenet121(num_classes=10, in_channels=1),
    "wrn-16-2": lambda: models.WideResNet(16, 2, num_classes=10, in_channels=1),
}


@pytest.mark.parametrize("name", sorted(TRAINING_NETS))
def test_training_step_on_8x8_digits_reaches_every_parameter(name, rng):
    """A training-mode step on 8×8 one-channel images gives a finite gradient for every parameter.

    (With the ImageNet stem, 8×8 images shrink to 1×1 maps by layer2, where training-mode BN sees
    only N values per channel; ResNet-101/152 with N = 2 then overflow their gradients, in PyTorch too.
    Use stem="cifar" or larger batches for such small images.)
    """
    model = TRAINING_NETS[name]()
    logits = model(rng.standard_normal((4, 1, 8, 8)).astype(np.float32))
    assert logits.shape == (4, 10)
    loss = F.cross_entropy(logits, np.array([3, 7, 0, 9]))
    assert np.isfinite(loss.item())
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or p.grad.shape != p.shape]
    assert not missing, f"no gradient for {missing[:5]}"
    assert all(np.all(np.isfinite(p.grad)) for p in model.parameters())


def test_imagenet_size(rng):
    """ResNet-18 at 224×224 (ResNet-50 runs at 224×224 in test_summary)."""
    model = models.resnet18().eval()
    with tr.no_grad():
        assert model(rng.standard_normal((1, 3, 224, 224)).astype(np.float32)).shape == (1, 1000)


# --------------------------------------------------------------------------- bad input
def test_wrong_channel_count_names_the_models_in_channels(rng):
    model = models.resnet18(num_classes=10)
    with pytest.raises(ValueError, match=r"ResNet was built with in_channels=3 but the input has 1 channels"):
        model(rng.standard_normal((2, 1, 8, 8)).astype(np.float32))
    for model in (models.densenet121(in_channels=1), models.WideResNet(16, 1, in_channels=1)):
        with pytest.raises(ValueError, match="in_channels=1 but the input has 3"):
            model(np.zeros((1, 3, 8, 8), np.float32))


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown model 'resnet19'; known models: densenet121, plain20") as info:
        models.get_model("resnet19")
    assert all(name in str(info.value) for name in models.list_models())
    assert models.list_models().index("resnet56") < models.list_models().index("resnet110")


def test_bad_architecture_arguments():
    with pytest.raises(ValueError, match="6n \\+ 2 layers"):
        models.cifar_resnet(21)
    with pytest.raises(ValueError, match="unknown stem 'tiny'"):
        models.resnet18(stem="tiny")
    with pytest.raises(ValueError, match="groups=1 and base_width=64"):
        models.BasicBlock(64, 64, groups=32)


# --------------------------------------------------------------------------- the blocks themselves
def check_block_gradient(block, x):
    """Finite differences (h = 1e-3) through ``block`` in training mode, float64. In training mode
    every input moves every ReLU input, so first make sure none is within reach of the kink at 0."""
    relu_inputs = []
    handle = block.relu.register_forward_hook(lambda m, inputs, out: relu_inputs.append(np.abs(inputs[0].data).min()))
    block(x)
    handle.remove()
    assert min(relu_inputs) > 1e-2, "pick another input: a ReLU input lies near 0"
    assert_gradcheck(block, [x], names=["x"])


@pytest.mark.parametrize("shortcut", ["A", "B", "C"])
def test_basic_block_gradient(shortcut):
    init.manual_seed(3)
    block = models.BasicBlock(2, 4, stride=2, downsample=models.make_shortcut(shortcut, 2, 4, 2)).double()
    check_block_gradient(block, tr.Tensor(np.random.default_rng(5).standard_normal((2, 2, 4, 4)), requires_grad=True))


def test_bottleneck_gradient():
    init.manual_seed(4)
    block = models.Bottleneck(4, 2, stride=2, downsample=models.make_shortcut("B", 4, 8, 2), groups=2,
                              base_width=32).double()
    check_block_gradient(block, tr.Tensor(np.random.default_rng(5).standard_normal((2, 4, 4, 4)), requires_grad=True))


def test_basic_block_forward_solution_region_can_be_replaced():
    """The classroom tool swaps the marked region for one `raise`: the file must stay valid Python."""
    source = inspect.getsource(blocks)
    pattern = re.compile(r"^( *)### BEGIN SOLUTION basicblock_forward\n(.*?)^\1### END SOLUTION basicblock_forward\n",
                         re.S | re.M)
    found = pattern.findall(source)
    assert len(found) == 1
    indent, body = found[0]
    assert "out = out + identity" in body and "+=" not in body and "self.conv2" in body and "downsample" in body
    released = pattern.sub(lambda m: f"{m.group(1)}raise NotImplementedError('basicblock_forward')\n", source)
    ast.parse(released)
