"""Bad input fails early, and the message names the values involved and what to do about it."""

import numpy as np
import pytest

from tinyresnet import Tensor, models
from tinyresnet import functional as F
from tinyresnet.nn import AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Linear, MaxPool2d


def zeros(*shape, dtype=np.float32):
    return Tensor(np.zeros(shape, dtype=dtype))


# --------------------------------------------------------------------------- the residual addition
@pytest.mark.parametrize("add", [lambda a, b: a + b, F.add], ids=["operator", "F.add"])
def test_adding_maps_of_different_shapes_asks_for_a_projection_shortcut(add):
    """The document's example: a 28×28×128 input cannot be added to a 14×14×256 branch output."""
    x, fx = zeros(1, 128, 28, 28), zeros(1, 256, 14, 14)
    with pytest.raises(ValueError) as info:
        add(x, fx)
    message = str(info.value)
    assert "(1, 128, 28, 28)" in message and "(1, 256, 14, 14)" in message
    assert "projection shortcut" in message and "1x1 convolution" in message


def test_other_broadcast_failures_name_both_shapes():
    with pytest.raises(ValueError, match=r"cannot multiply tensors of shapes \(2, 3\) and \(4,\)"):
        zeros(2, 3) * zeros(4)


# --------------------------------------------------------------------------- convolution
def test_conv_channel_mismatch_names_both_counts():
    with pytest.raises(ValueError) as info:
        F.conv2d(zeros(1, 3, 8, 8), zeros(4, 5, 3, 3))
    message = str(info.value)
    assert "the input has 3 channels but the weight expects 5" in message
    assert "(4, 5, 3, 3)" in message and "in_channels" in message


def test_conv_channel_mismatch_on_the_1x1_path_names_both_counts():
    with pytest.raises(ValueError, match="the input has 3 channels but the weight expects 8"):
        F.conv2d(zeros(1, 3, 8, 8), zeros(16, 8, 1, 1), stride=2)


def test_groups_that_do_not_divide_the_channels():
    with pytest.raises(ValueError, match=r"groups=2 must divide both the input channels \(3\) and the output "
                                         r"channels \(4\)"):
        F.conv2d(zeros(1, 3, 8, 8), zeros(4, 1, 3, 3), groups=2)


def test_conv_bias_of_the_wrong_length():
    with pytest.raises(ValueError, match=r"bias must have shape \(4,\), got \(3,\)"):
        F.conv2d(zeros(1, 3, 8, 8), zeros(4, 3, 3, 3), zeros(3))


@pytest.mark.parametrize("shape", [(3, 8, 8), (8, 8), (1, 1, 3, 8, 8)])
@pytest.mark.parametrize("op", [
    pytest.param(lambda x: F.conv2d(x, zeros(4, 3, 3, 3)), id="conv2d"),
    pytest.param(lambda x: F.conv2d(x, zeros(4, 3, 1, 1)), id="conv2d-1x1"),
    pytest.param(lambda x: F.max_pool2d(x, 2), id="max_pool2d"),
    pytest.param(lambda x: F.avg_pool2d(x, 2), id="avg_pool2d"),
    pytest.param(lambda x: F.adaptive_avg_pool2d(x, 1), id="adaptive_avg_pool2d"),
    pytest.param(lambda x: F.batch_norm(x, np.zeros(3), np.ones(3), training=True), id="batch_norm"),
])
def test_image_ops_need_4d_input(op, shape):
    with pytest.raises(ValueError) as info:
        op(zeros(*shape))
    message = str(info.value)
    assert "4-D input (N, C, H, W)" in message and f"got shape {shape}" in message
    if len(shape) == 3:
        assert "x.reshape(1, *x.shape)" in message                 # the fix for a single image


@pytest.mark.parametrize("op, axis, kernel, size, padding", [
    (lambda x: F.conv2d(x, zeros(1, 1, 5, 5)), "height", 5, 3, 0),
    (lambda x: F.conv2d(x, zeros(1, 1, 3, 7), padding=1), "width", 7, 4, 1),
    (lambda x: F.max_pool2d(x, 6, 1, 1), "height", 6, 3, 1),
    (lambda x: F.avg_pool2d(x, (2, 5)), "width", 5, 4, 0),
], ids=["conv-height", "conv-width", "max-pool", "avg-pool"])
def test_a_kernel_larger_than_the_padded_input(op, axis, kernel, size, padding):
    with pytest.raises(ValueError) as info:
        op(zeros(1, 1, 3, 4))
    message = str(info.value)
    padded = size + 2 * padding
    assert f"{axis} kernel size {kernel} is larger than the padded input ({size} + 2×padding {padding} = {padded})" \
        in message
    assert "use a smaller kernel or more padding" in message


def test_pool_padding_beyond_half_the_kernel():
    with pytest.raises(ValueError, match=r"padding \(2, 2\) must be at most half the kernel \(3, 3\)"):
        F.max_pool2d(zeros(1, 1, 8, 8), 3, 2, 2)


@pytest.mark.parametrize("op", [lambda x: F.conv2d(x, zeros(1, 1, 3, 3), stride=0), lambda x: F.max_pool2d(x, 2, 0)],
                         ids=["conv", "max-pool"])
def test_a_zero_stride(op):
    with pytest.raises(ValueError, match="stride must be at least 1, got 0"):
        op(zeros(1, 1, 6, 6))


def test_a_stride_that_is_not_an_int_pair():
    with pytest.raises(TypeError, match=r"stride must be an int or a pair of ints, got 1.5"):
        F.conv2d(zeros(1, 1, 6, 6), zeros(1, 1, 3, 3), stride=1.5)


# --------------------------------------------------------------------------- dtypes
@pytest.mark.parametrize("op, what", [
    (lambda x: F.conv2d(x, zeros(2, 3, 3, 3)), "conv2d needs a floating-point input"),
    (lambda x: F.conv2d(x, zeros(2, 3, 1, 1)), "conv2d needs a floating-point input"),
    (lambda x: F.max_pool2d(x, 2), "max_pool2d needs a floating-point input"),
    (lambda x: F.batch_norm(x, np.zeros(3), np.ones(3)), "batch_norm needs a floating-point input"),
    (lambda x: F.linear(x.reshape(1, -1), zeros(2, 48)), "linear needs a floating-point input"),
], ids=["conv2d", "conv2d-1x1", "max_pool2d", "batch_norm", "linear"])
def test_integer_images_are_refused_with_the_fix(op, what):
    with pytest.raises(TypeError) as info:
        op(zeros(1, 3, 4, 4, dtype=np.uint8))
    message = str(info.value)
    assert what in message and "uint8" in message and "astype(np.float32)" in message


def test_an_integer_weight_is_refused():
    with pytest.raises(TypeError, match=r"conv2d needs a floating-point weight, got dtype int64"):
        F.conv2d(zeros(1, 3, 4, 4), zeros(2, 3, 3, 3, dtype=np.int64))


def test_object_arrays_are_refused():
    with pytest.raises(TypeError, match=r"dtype object; pass a numeric array"):
        Tensor(np.array([1.0, "two"], dtype=object))


def test_integer_tensors_cannot_require_grad():
    with pytest.raises(TypeError, match=r"only floating-point tensors can require gradients, got dtype int64.*astype"):
        Tensor(np.arange(3), requires_grad=True)


# --------------------------------------------------------------------------- batch norm, linear, losses
def test_batch_norm_parameters_of_the_wrong_size():
    with pytest.raises(ValueError, match=r"weight has shape \(4,\) but the input has 3 channels.*it must be \(3,\)"):
        F.batch_norm(zeros(2, 3, 4, 4), np.zeros(3), np.ones(3), zeros(4), zeros(4), training=True)


def test_batch_norm_training_needs_more_than_one_value_per_channel():
    with pytest.raises(ValueError, match=r"more than one value per channel.*\(1, 3, 1, 1\).*eval mode"):
        F.batch_norm(zeros(1, 3, 1, 1), np.zeros(3), np.ones(3), training=True)


def test_batch_norm_eval_needs_running_statistics():
    with pytest.raises(ValueError, match="eval mode needs running_mean and running_var"):
        F.batch_norm(zeros(2, 3, 4, 4), None, None, training=False)


def test_linear_feature_mismatch_suggests_flattening():
    with pytest.raises(ValueError) as info:
        F.linear(zeros(2, 512, 1, 1), zeros(10, 512))
    message = str(info.value)
    assert "the input has 1 features (shape (2, 512, 1, 1))" in message and "expects 512" in message
    assert "flatten" in message


def test_matmul_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"matmul shapes \(2, 3\) and \(4, 5\) do not match"):
        zeros(2, 3) @ zeros(4, 5)


@pytest.mark.parametrize("targets, text", [
    (np.array([0, 5]), "target 5 is outside the 5 classes [0, 4]"),
    (np.array([-1, 2]), "target -1 is outside the 5 classes [0, 4]"),
], ids=["too-large", "negative"])
def test_cross_entropy_target_out_of_range(targets, text):
    with pytest.raises(ValueError) as info:
        F.cross_entropy(zeros(2, 5), targets)
    assert text in str(info.value)


def test_cross_entropy_float_targets():
    with pytest.raises(TypeError, match=r"targets must be integer class indices, got dtype float64"):
        F.cross_entropy(zeros(2, 5), np.array([0.0, 1.0]))


def test_cross_entropy_one_target_per_row():
    with pytest.raises(ValueError, match=r"targets of shape \(3,\) do not match logits of shape \(2, 5\)"):
        F.cross_entropy(zeros(2, 5), np.array([0, 1, 2]))


def test_cross_entropy_unknown_reduction():
    with pytest.raises(ValueError, match=r"reduction must be 'mean', 'sum' or 'none', got 'avg'"):
        F.cross_entropy(zeros(2, 5), np.array([0, 1]), reduction="avg")


# --------------------------------------------------------------------------- shapes
def test_cat_with_mismatched_sizes_names_the_shapes():
    with pytest.raises(ValueError, match=r"cat along dim 1: shapes \[\(1, 2, 4, 4\), \(1, 3, 5, 4\)\]"):
        F.cat([zeros(1, 2, 4, 4), zeros(1, 3, 5, 4)], dim=1)


def test_reshape_to_the_wrong_size_names_both():
    with pytest.raises(ValueError, match=r"cannot reshape a tensor of shape \(2, 3\) \(6 elements\) to \(4, 2\)"):
        zeros(2, 3).reshape(4, 2)


def test_pad_needs_pairs():
    with pytest.raises(ValueError, match=r"pad needs pairs \(before, after\) per dim, got \(1, 2, 3\)"):
        F.pad(zeros(1, 1, 2, 2), (1, 2, 3))


# --------------------------------------------------------------------------- integer arguments
@pytest.mark.parametrize("op", [
    pytest.param(lambda x: F.conv2d(x, zeros(4, 3, 3, 3), padding=-1), id="conv2d"),
    pytest.param(lambda x: F.conv2d(x, zeros(4, 3, 1, 1), padding=(0, -1)), id="conv2d-1x1"),
    pytest.param(lambda x: Conv2d(3, 4, 3, padding=-1)(x), id="Conv2d"),
    pytest.param(lambda x: F.max_pool2d(x, 3, 1, -1), id="max_pool2d"),
    pytest.param(lambda x: MaxPool2d(3, 1, padding=-1)(x), id="MaxPool2d"),
    pytest.param(lambda x: F.avg_pool2d(x, 3, 1, -1), id="avg_pool2d"),
])
def test_a_negative_padding_is_refused(op):
    with pytest.raises(ValueError) as info:
        op(zeros(1, 3, 8, 8))
    message = str(info.value)
    assert "padding must be at least 0, got" in message and "-1" in message and "slice" in message


@pytest.mark.parametrize("groups", [2.0, 0, -1, True], ids=["float", "zero", "negative", "bool"])
@pytest.mark.parametrize("where", ["F.conv2d", "Conv2d"])
def test_groups_must_be_a_positive_int(groups, where):
    with pytest.raises(ValueError) as info:
        if where == "F.conv2d":
            F.conv2d(zeros(1, 4, 8, 8), zeros(4, 2, 3, 3), groups=groups)
        else:
            Conv2d(4, 4, 3, groups=groups)
    assert f"groups must be a whole number of at least 1, got {groups!r}" in str(info.value)


@pytest.mark.parametrize("op", [
    pytest.param(lambda x, i: F.conv2d(x, Tensor(np.ones((4, 3, 3, 3), np.float32)), stride=i(2), padding=i(1),
                                       groups=i(1)), id="conv2d"),
    pytest.param(lambda x, i: F.conv2d(x, Tensor(np.ones((4, 3, 1, 1), np.float32)), stride=(i(2), i(2))),
                 id="conv2d-1x1"),
    pytest.param(lambda x, i: F.max_pool2d(x, i(3), i(2), i(1)), id="max_pool2d"),
    pytest.param(lambda x, i: F.avg_pool2d(x, (i(2), 2), i(2)), id="avg_pool2d"),
    pytest.param(lambda x, i: F.adaptive_avg_pool2d(x, i(2)), id="adaptive_avg_pool2d"),
])
def test_numpy_integers_are_ints(op):
    """``stride=np.int64(2)`` (as a shape computation or a config file gives it) means ``stride=2``."""
    x = Tensor(np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32))
    np.testing.assert_array_equal(op(x, np.int64).data, op(x, int).data)
    np.testing.assert_array_equal(op(x, np.int32).data, op(x, int).data)


def test_a_layer_takes_numpy_integers_and_keeps_python_ints():
    conv = Conv2d(np.int64(3), np.int64(4), np.int64(3), stride=np.int64(2), padding=np.int32(1), groups=np.int64(1))
    assert conv.stride == (2, 2) and type(conv.stride[0]) is int and type(conv.in_channels) is int
    assert conv(zeros(1, 3, 8, 8)).shape == (1, 4, 4, 4)
    assert Linear(np.int64(3), np.int16(2)).weight.shape == (2, 3)


@pytest.mark.parametrize("op", [
    pytest.param(lambda x: F.conv2d(x, zeros(4, 3, 3, 3), stride=True), id="conv2d"),
    pytest.param(lambda x: F.conv2d(x, zeros(4, 3, 1, 1), stride=(1, True)), id="conv2d-1x1"),
    pytest.param(lambda x: Conv2d(3, 4, 3, stride=True), id="Conv2d"),
    pytest.param(lambda x: F.max_pool2d(x, 2, True), id="max_pool2d"),
])
def test_a_bool_stride_is_refused(op):
    with pytest.raises(TypeError, match=r"stride must be an int or a pair of ints, got (True|\(1, True\))"):
        op(zeros(1, 3, 8, 8))


@pytest.mark.parametrize("build, text", [
    (lambda: Conv2d(3, 0, 3), "Conv2d: out_channels must be a whole number of at least 1, got 0"),
    (lambda: Conv2d(-1, 4, 3), "Conv2d: in_channels must be a whole number of at least 1, got -1"),
    (lambda: Conv2d(3, 4, 0), "Conv2d: kernel_size must be at least 1, got 0"),
    (lambda: Conv2d(3, 4, 3, stride=(1, 0)), "Conv2d: stride must be at least 1, got (1, 0)"),
    (lambda: Linear(-1, 3), "Linear: in_features must be a whole number of at least 1, got -1"),
    (lambda: Linear(3, 0), "Linear: out_features must be a whole number of at least 1, got 0"),
    (lambda: Linear(2.5, 3), "Linear: in_features must be a whole number of at least 1, got 2.5 (a float)"),
    (lambda: BatchNorm2d(0), "BatchNorm2d: num_features must be a whole number of at least 1, got 0"),
    (lambda: MaxPool2d(0), "MaxPool2d: kernel_size must be at least 1, got 0"),
    (lambda: AdaptiveAvgPool2d((1, 0)), "AdaptiveAvgPool2d: output_size must be at least 1, got (1, 0)"),
    (lambda: models.resnet20(num_classes=-3), "ResNet: num_classes must be a whole number of at least 1, got -3"),
    (lambda: models.get_model("resnet18", num_classes=0), "ResNet: num_classes must be a whole number of at least 1"),
    (lambda: models.resnet20(in_channels=0), "ResNet: in_channels must be a whole number of at least 1, got 0"),
    (lambda: models.ResNet(models.BasicBlock, [2, 0, 2, 2]), "ResNet: layers[1] (blocks in stage 2) must be"),
    (lambda: models.cifar_resnet(20.0), "cifar_resnet: depth must be a whole number of at least 1, got 20.0"),
    (lambda: models.wide_resnet28_10(num_classes=-3), "WideResNet: num_classes must be a whole number of at least 1"),
    (lambda: models.densenet121(num_classes=-3), "DenseNet: num_classes must be a whole number of at least 1"),
], ids=["conv-out", "conv-in", "conv-kernel", "conv-stride", "linear-in", "linear-out", "linear-float", "batch-norm",
        "max-pool", "adaptive-pool", "resnet20-classes", "resnet18-classes", "resnet-in", "resnet-layers",
        "cifar-depth", "wide-classes", "densenet-classes"])
def test_sizes_of_layers_and_models_must_be_positive_ints(build, text):
    with pytest.raises(ValueError) as info:
        build()
    assert text in str(info.value)
