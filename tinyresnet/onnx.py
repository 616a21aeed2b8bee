"""Export a model to ONNX: ``export(model, example_input, "model.onnx")``.

    >>> from tinyresnet import models, onnx
    >>> model = models.resnet20()
    >>> onnx.export(model, np.zeros((2, 3, 32, 32), np.float32), "resnet20.onnx")

How: the model runs once, in eval mode, on ``example_input`` with autograd recording, and the
graph that forward pass leaves behind is translated op by op: every recorded ``Function`` has
an ONNX counterpart (``CONVERTERS``), its input ``Edge``\\ s tell which op (or which weight)
feeds it. Tracing, rather than walking the module tree, reads what forward really computed:
``F.flatten`` and ``F.cat`` inside a ``forward``, the option-A shortcut's slicing and zero
padding, DenseNet's concatenations and a transition's pool chosen from the map size all come
out without a line of code per block, and a new block made of supported ops exports as it is.
What a trace cannot see is control flow: a forward that branches on the values takes the
example's branch. Shapes beyond the batch are fixed by the example input (as the checkpoint's
``image_shape`` is); the batch dimension is dynamic unless ``dynamic_batch=False``.

Weights become initializers named as in the state_dict (``layer1.0.conv1.weight``,
``bn1.running_mean``); batch norm becomes ``BatchNormalization`` with the running statistics.
An op with no translation fails naming it and where it was made.

Needs the ``onnx`` package (``pip install "tinyresnet[onnx]"``; onnxruntime too for ``verify``).
This module is ``tinyresnet.onnx``; the ``import onnx`` inside it is an absolute import and finds
the third-party package, never this file, as long as this file is not run as a script (which
would put ``tinyresnet/`` first on ``sys.path``).
"""

import contextlib

import numpy as np

from . import __version__, autograd
from .autograd import Tensor
from .backend import device_of, to_device, to_numpy
from .ops.activation import LogSoftmaxFunction, ReLUFunction, SoftmaxFunction
from .ops.basic import (
    AddFunction,
    DivFunction,
    ExpFunction,
    GetItemFunction,
    LogFunction,
    MatMulFunction,
    MulFunction,
    NegFunction,
    ReshapeFunction,
    SubFunction,
    ToDeviceFunction,
    TransposeFunction,
)
from .ops.conv import Conv1x1Function, Conv2dFunction
from .ops.linear import LinearFunction
from .ops.norm import BatchNorm2dFunction
from .ops.pool import AdaptiveAvgPool2dFunction, AvgPool2dFunction, MaxPool2dFunction
from .ops.shape import ConcatFunction, PadFunction

MIN_OPSET = 17
INT64_MAX = np.iinfo(np.int64).max
BATCH = "batch"                     # the name of the dynamic batch dimension


class UnsupportedOperation(NotImplementedError):
    """The traced forward pass used an op (or an op's setting) that has no ONNX translation here."""


def _require(package):
    """Import ``onnx`` or ``onnxruntime`` (the third-party packages), or say how to install them."""
    try:
        if package == "onnx":
            import onnx
            return onnx
        import onnxruntime
        return onnxruntime
    except ImportError as e:
        raise ImportError(f"tinyresnet.onnx needs the {package!r} package: pip install \"tinyresnet[onnx]\" "
                          f"(or pip install onnx onnxruntime)") from e


# ---------------------------------------------------------------------------------------- tracing

@contextlib.contextmanager
def _recording():
    """Record the graph even when the caller is inside ``no_grad()``: the trace is the graph."""
    previous = autograd._Config.enable_grad
    autograd._Config.enable_grad = True
    try:
        yield
    finally:
        autograd._Config.enable_grad = previous


@contextlib.contextmanager
def _eval_mode(model):
    """``model`` in eval mode for the block; each submodule's own mode is put back afterwards."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, training in modes:
            object.__setattr__(m, "training", training)      # as Module.train sets it, one module at a time


def _model_device(model):
    for p in model.parameters():
        return device_of(p.data)
    return "cpu"


def trace(model, example_input):
    """Run ``model`` once in eval mode and return ``(input_tensor, output_tensor)``; the output's
    ``creator`` chain is the recorded graph."""
    x = np.asarray(to_numpy(example_input.data if isinstance(example_input, Tensor) else example_input))
    if x.ndim != 4:
        raise ValueError(f"export: example_input must be one batch (N, C, H, W), got shape {x.shape}; "
                         f"add a batch axis with x[None]")
    if x.dtype.kind != "f":
        raise ValueError(f"export: example_input must be floating point (float32), got dtype {x.dtype}")
    inputs = Tensor(to_device(x, _model_device(model)), requires_grad=True)   # so that every op records
    with _eval_mode(model), _recording():
        output = model(inputs)
    if not isinstance(output, Tensor):
        raise UnsupportedOperation(f"export: the model returned {type(output).__name__}; only a model "
                                   f"returning one Tensor can be exported")
    if output.creator is None:
        raise UnsupportedOperation("export: the model's output was not computed from its input (no recorded ops)")
    return inputs, output


def _functions_in_order(output):
    """The recorded functions behind ``output``, each after every function it reads (a depth-first
    post-order, without recursion: a ResNet-110 is a chain of hundreds of ops).

    A function is marked when it is expanded, not when it is first pushed: DenseNet's ``cat(x0, f(x0))``
    reaches x0's op twice, and it must come out before ``f``, whichever path reaches it first.
    """
    order, expanded = [], set()
    stack = [(output.creator, False)]
    while stack:
        fn, finished = stack.pop()
        if finished:
            order.append(fn)
            continue
        if id(fn) in expanded:
            continue
        expanded.add(id(fn))
        stack.append((fn, True))
        for edge in reversed(fn.inputs):                 # the first input's ops come out first
            if edge.creator is not None and id(edge.creator) not in expanded:
                stack.append((edge.creator, False))
    return order


# ---------------------------------------------------------------------------------------- the graph

class GraphBuilder:
    """Collects ONNX nodes and initializers; names every value of the trace.

    ``names`` maps ``id`` of a Function (its output) or of a leaf tensor (a weight, the input)
    to the ONNX value name; ``array_names`` gives BN's running statistics their state_dict names.
    """

    def __init__(self, onnx, model, inputs, input_name, output_name, dynamic_batch):
        self.helper, self.numpy_helper = onnx.helper, onnx.numpy_helper
        self.nodes, self.initializers = [], []
        self.dynamic_batch = dynamic_batch
        self.names = {id(inputs): input_name}
        self.leaf_names = {id(p): name for name, p in model.named_parameters()}
        self.array_names = {id(b.data if isinstance(b, Tensor) else b): name for name, b in model.named_buffers()}
        self.used = {input_name, output_name}
        self.counter = 0

    def fresh(self, hint):
        """A value or node name not used yet: ``hint``, else ``hint_2``, ``hint_3``, ..."""
        name, k = hint, 1
        while name in self.used:
            k += 1
            name = f"{hint}_{k}"
        self.used.add(name)
        return name

    def constant(self, array, hint="const", dtype=None):
        """An initializer holding ``array``; returns its name."""
        value = np.asarray(to_numpy(array), dtype=dtype)
        name = self.fresh(hint)
        self.initializers.append(self.numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def ints(self, values, hint):
        """An int64 initializer (the shape-like inputs of Pad, Slice, Reshape)."""
        return self.constant(np.asarray(values, dtype=np.int64), hint)

    def state(self, array, fallback):
        """An initializer for a buffer such as ``running_mean``: its state_dict name where known."""
        return self.constant(array, self.array_names.get(id(array), fallback), dtype=np.float32)

    def value(self, edge):
        """The ONNX name of what ``edge`` points at: an earlier op's output, the input or a weight."""
        key = id(edge.creator) if edge.creator is not None else id(edge.leaf)
        if key not in self.names:                        # a leaf seen for the first time: a weight
            self.names[key] = self.constant(edge.leaf.data, self.leaf_names.get(key, "const"))
        return self.names[key]

    def node(self, op_type, inputs, output=None, **attributes):
        """Add one node; returns the name of its output (a fresh one unless given)."""
        self.counter += 1
        output = output or self.fresh(f"{op_type.lower()}_out")
        self.nodes.append(self.helper.make_node(op_type, list(inputs), [output], name=f"{op_type}_{self.counter}",
                                                **attributes))
        return output


def _converter(fn):
    """The translation of ``fn``: looked up along its class's bases, so a fast kernel (a subclass of
    the plain op) uses the plain op's."""
    for cls in type(fn).__mro__:
        if cls in CONVERTERS:
            return CONVERTERS[cls]
    where = f" (created at {fn.created_at})" if getattr(fn, "created_at", None) else ""
    supported = ", ".join(sorted(cls.__name__ for cls in CONVERTERS))
    raise UnsupportedOperation(f"cannot export {fn.name}{where}: tinyresnet.onnx has no ONNX translation for it. "
                               f"Supported ops: {supported}. Write the model's forward with those, or add a "
                               f"converter for {fn.name} to tinyresnet.onnx.CONVERTERS")


def _unsupported(fn, setting):
    where = f" (created at {fn.created_at})" if getattr(fn, "created_at", None) else ""
    return UnsupportedOperation(f"cannot export {fn.name}{where}: {setting}")


# ---------------------------------------------------------------------------------------- converters
# Each takes (builder, fn, inputs, output): ``inputs`` are the ONNX names of fn's inputs, in order;
# the node(s) it adds must end in a value named ``output``.

def convert_conv(b, fn, inputs, output):
    kh, kw = fn.inputs[1].shape[2:]
    ph, pw = getattr(fn, "padding", (0, 0))              # Conv1x1Function has a stride only
    b.node("Conv", inputs, output, kernel_shape=[kh, kw], strides=list(fn.stride), pads=[ph, pw, ph, pw],
           group=getattr(fn, "groups", 1), dilations=list(getattr(fn, "dilation", (1, 1))))


def convert_batch_norm(b, fn, inputs, output):
    if fn.training:
        raise _unsupported(fn, "batch norm in training mode (batch statistics); export runs the model in eval mode, "
                               "so this BN was called with training=True explicitly")
    channels = fn.inputs[0].shape[1]
    scale = inputs[1] if len(inputs) > 1 else b.constant(np.ones(channels, np.float32), "bn_scale")
    bias = inputs[2] if len(inputs) > 2 else b.constant(np.zeros(channels, np.float32), "bn_bias")
    mean, var = b.state(fn.running_mean, "running_mean"), b.state(fn.running_var, "running_var")
    b.node("BatchNormalization", [inputs[0], scale, bias, mean, var], output, epsilon=float(fn.eps))


def convert_max_pool(b, fn, inputs, output):
    ph, pw = fn.padding
    b.node("MaxPool", inputs, output, kernel_shape=list(fn.kernel), strides=list(fn.stride), pads=[ph, pw, ph, pw],
           dilations=list(getattr(fn, "dilation", (1, 1))), ceil_mode=int(getattr(fn, "ceil_mode", False)))


def convert_avg_pool(b, fn, inputs, output):
    if getattr(fn, "divisor_override", None) is not None:
        raise _unsupported(fn, f"avg_pool2d with divisor_override={fn.divisor_override} has no ONNX AveragePool "
                               f"equivalent; leave divisor_override=None")
    ph, pw = fn.padding
    b.node("AveragePool", inputs, output, kernel_shape=list(fn.kernel), strides=list(fn.stride),
           pads=[ph, pw, ph, pw], ceil_mode=int(getattr(fn, "ceil_mode", False)),
           count_include_pad=int(getattr(fn, "count_include_pad", True)))    # torch's default: zero padding counts


def convert_adaptive_avg_pool(b, fn, inputs, output):
    H, W = fn.inputs[0].shape[2:]
    OH, OW = fn.output_size
    if (OH, OW) == (1, 1):
        b.node("GlobalAveragePool", inputs, output)
    elif H % OH == 0 and W % OW == 0:                    # equal windows: an ordinary average pool
        b.node("AveragePool", inputs, output, kernel_shape=[H // OH, W // OW], strides=[H // OH, W // OW])
    else:
        raise _unsupported(fn, f"adaptive average pooling of a {H}×{W} map to {OH}×{OW} has windows of unequal "
                               f"sizes; use an input whose size is a multiple of {OH}×{OW}, or output_size (1, 1)")


def convert_linear(b, fn, inputs, output):
    if len(fn.inputs[0].shape) == 2:
        b.node("Gemm", inputs, output, transB=1)        # x · Wᵀ + b
        return
    weight_t = b.node("Transpose", [inputs[1]], perm=[1, 0])
    if len(inputs) == 2:
        b.node("MatMul", [inputs[0], weight_t], output)
    else:
        b.node("Add", [b.node("MatMul", [inputs[0], weight_t]), inputs[2]], output)


def convert_reshape(b, fn, inputs, output):
    """Keep the batch dimension dynamic: ``Flatten`` for (N, ...) -> (N, M), else ``Reshape`` to (0, ...),
    where 0 copies the input's batch size."""
    source, target = tuple(fn.inputs[0].shape), tuple(fn.output_shape)
    keeps_batch = len(source) >= 1 and len(target) >= 1 and source[0] == target[0]
    if keeps_batch and len(target) == 2 and len(source) >= 2:
        b.node("Flatten", inputs, output, axis=1)
    elif keeps_batch and 0 not in target[1:]:
        b.node("Reshape", [inputs[0], b.ints([0, *target[1:]], "shape")], output)
    elif not b.dynamic_batch:
        b.node("Reshape", [inputs[0], b.ints(target, "shape")], output)
    else:
        raise _unsupported(fn, f"a reshape from {source} to {target} changes the batch dimension, which cannot "
                               f"stay dynamic; export with dynamic_batch=False, or keep the batch axis first")


def _slices(fn):
    """fn.index as one slice per leading axis (``...`` expanded); anything but slices is unsupported."""
    index = fn.index if isinstance(fn.index, tuple) else (fn.index,)
    ndim = len(fn.inputs[0].shape)
    if sum(part is Ellipsis for part in index) == 1:
        k = index.index(Ellipsis)
        index = index[:k] + (slice(None),) * (ndim - len(index) + 1) + index[k + 1:]
    if not all(isinstance(part, slice) for part in index):
        raise _unsupported(fn, f"indexing with {fn.index!r}: only slices (x[:, :, ::2, ::2]) are supported, "
                               f"not integers, None, arrays or masks")
    return index


def convert_getitem(b, fn, inputs, output):
    """Python slices map to ``Slice`` as they are: ONNX clamps start/end as Python does."""
    starts, ends, axes, steps = [], [], [], []
    for axis, part in enumerate(_slices(fn)):
        if part == slice(None):
            continue
        step = 1 if part.step is None else part.step
        starts.append(part.start if part.start is not None else (0 if step > 0 else INT64_MAX))
        ends.append(part.stop if part.stop is not None else (INT64_MAX if step > 0 else -INT64_MAX))
        axes.append(axis)
        steps.append(step)
    if not axes:
        b.node("Identity", inputs, output)
        return
    b.node("Slice", [inputs[0], b.ints(starts, "starts"), b.ints(ends, "ends"), b.ints(axes, "axes"),
                     b.ints(steps, "steps")], output)


def convert_pad(b, fn, inputs, output):
    """torch-style pairs from the last axis -> ONNX's [all begins..., all ends...] from the first."""
    ndim = len(fn.inputs[0].shape)
    widths = [(0, 0)] * ndim
    for d in range(len(fn.pad) // 2):
        widths[ndim - 1 - d] = (fn.pad[2 * d], fn.pad[2 * d + 1])
    pads = b.ints([w[0] for w in widths] + [w[1] for w in widths], "pads")
    value = b.constant(np.asarray(fn.value, dtype=fn.inputs[0].dtype), "pad_value")
    b.node("Pad", [inputs[0], pads, value], output, mode="constant")


def convert_transpose(b, fn, inputs, output):
    perm = fn.axes if fn.axes is not None else tuple(reversed(range(len(fn.inputs[0].shape))))
    b.node("Transpose", inputs, output, perm=[int(p) for p in perm])


def convert_as(op_type, **attributes):
    """A one-to-one op: the same inputs, the given attributes (or ``name=lambda fn: value``)."""
    def convert(b, fn, inputs, output):
        values = {k: (v(fn) if callable(v) else v) for k, v in attributes.items()}
        b.node(op_type, inputs, output, **values)
    return convert


CONVERTERS = {
    Conv2dFunction: convert_conv,
    Conv1x1Function: convert_conv,
    BatchNorm2dFunction: convert_batch_norm,
    ReLUFunction: convert_as("Relu"),
    MaxPool2dFunction: convert_max_pool,
    AvgPool2dFunction: convert_avg_pool,
    AdaptiveAvgPool2dFunction: convert_adaptive_avg_pool,
    LinearFunction: convert_linear,
    ReshapeFunction: convert_reshape,
    GetItemFunction: convert_getitem,
    PadFunction: convert_pad,
    ConcatFunction: convert_as("Concat", axis=lambda fn: int(fn.dim)),
    TransposeFunction: convert_transpose,
    AddFunction: convert_as("Add"),
    SubFunction: convert_as("Sub"),
    MulFunction: convert_as("Mul"),
    DivFunction: convert_as("Div"),
    NegFunction: convert_as("Neg"),
    ExpFunction: convert_as("Exp"),
    LogFunction: convert_as("Log"),
    MatMulFunction: convert_as("MatMul"),
    SoftmaxFunction: convert_as("Softmax", axis=lambda fn: int(fn.dim)),
    LogSoftmaxFunction: convert_as("LogSoftmax", axis=lambda fn: int(fn.dim)),
    ToDeviceFunction: convert_as("Identity"),
}


# ---------------------------------------------------------------------------------------- export

def _value_info(onnx, name, dtype, shape, dynamic_batch, batch):
    dims = [BATCH if dynamic_batch and i == 0 and n == batch else int(n) for i, n in enumerate(shape)]
    return onnx.helper.make_tensor_value_info(name, onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype)), dims)


def _check_opset(onnx, opset):
    newest = onnx.defs.onnx_opset_version()
    if not isinstance(opset, (int, np.integer)) or not MIN_OPSET <= opset <= newest:
        raise ValueError(f"export: opset={opset!r} is not supported; use an opset from {MIN_OPSET} to {newest} "
                         f"(the newest this onnx {onnx.__version__} knows)")
    return int(opset)


def _value_hint(fn):
    """'FastConv2dFunction' -> 'conv2d': the op's output names read as the op."""
    return fn.name.removeprefix("Fast").removesuffix("Function").lower()


def to_onnx(model, example_input, opset=MIN_OPSET, dynamic_batch=True, input_name="input", output_name="logits",
            metadata=None):
    """The ONNX ``ModelProto`` of ``model`` traced on ``example_input`` (N, C, H, W), checked with
    ``onnx.checker.check_model``. ``metadata``: string pairs stored in the model's metadata_props."""
    onnx = _require("onnx")
    opset = _check_opset(onnx, opset)
    inputs, output = trace(model, example_input)
    builder = GraphBuilder(onnx, model, inputs, input_name, output_name, dynamic_batch)
    functions = _functions_in_order(output)
    for fn in functions:
        convert = _converter(fn)
        out = output_name if fn is output.creator else builder.fresh(_value_hint(fn))
        convert(builder, fn, [builder.value(edge) for edge in fn.inputs], out)
        builder.names[id(fn)] = out
    batch = inputs.shape[0]
    graph = onnx.helper.make_graph(
        builder.nodes, type(model).__name__,
        [_value_info(onnx, input_name, inputs.dtype, inputs.shape, dynamic_batch, batch)],
        [_value_info(onnx, output_name, output.dtype, output.shape, dynamic_batch, batch)],
        initializer=builder.initializers)
    opset_ids = [onnx.helper.make_opsetid("", opset)]
    proto = onnx.helper.make_model(graph, opset_imports=opset_ids, producer_name="tinyresnet",
                                   producer_version=__version__,
                                   ir_version=onnx.helper.find_min_ir_version_for(opset_ids))
    if metadata:
        onnx.helper.set_model_props(proto, {str(k): str(v) for k, v in metadata.items()})
    onnx.checker.check_model(proto, full_check=True)
    return proto


def export(model, example_input, path, opset=MIN_OPSET, dynamic_batch=True, input_name="input",
           output_name="logits", metadata=None):
    """Write ``model`` as an ONNX file at ``path``; returns the ``ModelProto``.

    ``example_input`` (N, C, H, W), an array or Tensor, fixes the channels, height and width (the batch
    stays dynamic, named "batch", unless ``dynamic_batch=False``). The model runs once on it in eval mode;
    its mode is put back afterwards. Raises ``UnsupportedOperation`` naming an op with no translation.
    """
    onnx = _require("onnx")
    proto = to_onnx(model, example_input, opset, dynamic_batch, input_name, output_name, metadata)
    onnx.save(proto, str(path))
    return proto


def run_onnx(path, x):
    """The outputs of the ONNX model at ``path`` on ``x`` (float32), by onnxruntime on the CPU."""
    ort = _require("onnxruntime")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: np.asarray(x, dtype=np.float32)})[0]


def verify(model, path, x):
    """Compare tinyresnet (eval mode, no_grad) and onnxruntime on ``x``: returns
    ``(max |difference|, max |tinyresnet output|)``."""
    x = np.asarray(x, dtype=np.float32)
    with _eval_mode(model), autograd.no_grad():
        expected = to_numpy(model(Tensor(to_device(x, _model_device(model)))).data)
    got = run_onnx(path, x)
    if got.shape != expected.shape:
        raise RuntimeError(f"the ONNX model gave shape {got.shape} but tinyresnet gives {expected.shape}")
    return float(np.max(np.abs(got - expected))), float(np.max(np.abs(expected)))
