"""``Module`` and ``Parameter``: layers that own their weights, as in ``torch.nn``.

A Module keeps three ordered registries, filled by plain attribute assignment:
    parameters  ``self.weight = Parameter(...)``   trainable Tensors
    buffers     ``self.register_buffer("running_mean", array)``   raw ndarrays (BN statistics),
                updated in place by the ops and saved with the weights
    children    ``self.conv1 = Conv2d(...)``   sub-modules; their entries get dotted names
                such as ``layer1.0.conv1.weight``

``state_dict()`` lists parameters then buffers of each module, then its children, in the order
they were assigned: the same names and order as PyTorch, so torchvision checkpoints load by name.
"""

import itertools
from collections import OrderedDict
from typing import NamedTuple

import numpy as np

from ..autograd import Function, RemovableHandle, Tensor, is_grad_enabled
from ..backend import check_device, device_of, to_device, to_numpy
from ..serialization import load_weights, save_npz


class Parameter(Tensor):
    """A Tensor that a Module trains: ``requires_grad=True`` unless told otherwise."""

    def __init__(self, data, requires_grad=True):
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


class IncompatibleKeys(NamedTuple):
    """What ``load_state_dict(strict=False)`` skipped."""

    missing_keys: list
    unexpected_keys: list


class StateDictMismatch(RuntimeError):
    """``load_state_dict``'s error when a state_dict does not fit the module (a RuntimeError, as in PyTorch).

    Besides its message it holds what did not fit, so that a caller can explain it in its own terms
    (``training.load_model_state`` names the checkpoint file and the model it was written for):
    ``missing_keys``, ``unexpected_keys`` (both empty unless strict) and ``shape_mismatches``, a list
    of ``(key, shape given, shape of the module's array)``.
    """

    def __init__(self, message, missing_keys, unexpected_keys, shape_mismatches):
        super().__init__(message)
        self.missing_keys, self.unexpected_keys, self.shape_mismatches = missing_keys, unexpected_keys, shape_mismatches


# Keys that a checkpoint may lack without being reported missing: older PyTorch checkpoints
# have no num_batches_tracked, and it plays no part in the forward pass (momentum is not None).
OPTIONAL_KEY_SUFFIXES = ("num_batches_tracked",)


def shorten(keys, limit=10, sep=", "):
    """The first ``limit`` of ``keys`` joined by ``sep``, then how many more there are: for error
    messages about state_dicts (here and in ``training.checkpoint``)."""
    keys = list(keys)
    shown = sep.join(keys[:limit])
    return shown + (f"{sep}... and {len(keys) - limit} more" if len(keys) > limit else "")


# Prefixes that wrappers put before every key, and where they come from.
_PREFIX_ORIGINS = {"module.": " (saved from a DataParallel or DistributedDataParallel wrapper)",
                   "_orig_mod.": " (saved from a torch.compile'd model)",
                   "model/": " (the model part of a training checkpoint: model.load(path) reads it)",
                   "model.": ""}


def _wrapper_prefix(state_dict, targets):
    """The prefix every key of ``state_dict`` has and whose removal makes the keys the model's, or None."""
    keys = list(state_dict)
    for prefix in _PREFIX_ORIGINS:
        if keys and all(k.startswith(prefix) for k in keys if k != "meta"):
            stripped = {k[len(prefix):] for k in keys if k != "meta"}
            if stripped & set(targets):
                return prefix
    return None


class Module:
    """The base class of every layer and model: subclasses set attributes in ``__init__`` and
    define ``forward``; call the module itself (``model(x)``) so that hooks run."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_forward_hooks", OrderedDict())
        object.__setattr__(self, "_forward_pre_hooks", OrderedDict())
        object.__setattr__(self, "_backward_hooks", OrderedDict())
        object.__setattr__(self, "_backward_pre_hooks", OrderedDict())
        object.__setattr__(self, "training", True)

    # ------------------------------------------------------------------ registration
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}: call super().__init__() before assigning "
                                 f"attributes (assigning {name!r})")
        if isinstance(value, Parameter):
            kind = self._parameters
        elif isinstance(value, Module):
            kind = self._modules
        elif name in self._buffers:
            kind = self._buffers       # replacing a buffer's array (to(device) does this)
        elif value is None and (name in self._parameters or name in self._modules):
            kind = self._parameters if name in self._parameters else self._modules
        else:
            for registry in (self._parameters, self._buffers, self._modules):
                if name in registry:
                    raise TypeError(f"cannot assign {type(value).__name__} to {type(self).__name__}.{name}, "
                                    f"which is registered as a parameter or module; assign a "
                                    f"Parameter or a Module (or None)")
            object.__setattr__(self, name, value)
            return
        self._register(kind, name, value)

    def _register(self, registry, name, value):
        """Put ``name`` in one registry, removing it from the others and from the plain attributes."""
        for other in (self._parameters, self._buffers, self._modules):
            if other is not registry:
                other.pop(name, None)
        self.__dict__.pop(name, None)
        registry[name] = value

    def __getattr__(self, name):          # only called when normal lookup fails
        for registry in ("_parameters", "_buffers", "_modules"):
            entries = self.__dict__.get(registry)
            if entries is not None and name in entries:
                return entries[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name):
        for registry in (self._parameters, self._buffers, self._modules):
            if name in registry:
                del registry[name]
                return
        object.__delattr__(self, name)

    def register_buffer(self, name, array):
        """Keep ``array`` (an ndarray, not trained) with the module: moved by ``to`` and saved in
        ``state_dict``. BatchNorm2d's running statistics are buffers."""
        if isinstance(array, Tensor):
            raise TypeError(f"register_buffer({name!r}): pass the raw array (tensor.data), not a Tensor")
        if name in self._parameters or name in self._modules:
            raise KeyError(f"{name!r} is already a parameter or module of {type(self).__name__}")
        self._register(self._buffers, name, array)

    def register_parameter(self, name, param):
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter({name!r}) needs a Parameter or None, got {type(param).__name__}")
        self._register(self._parameters, name, param)

    def add_module(self, name, module):
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module({name!r}) needs a Module or None, got {type(module).__name__}")
        if "." in name or not name:
            raise KeyError(f"module name {name!r} must be non-empty and contain no '.'")
        self._register(self._modules, name, module)

    # ------------------------------------------------------------------ calling
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args, **kwargs):
        given = args
        for hook in list(self._forward_pre_hooks.values()):
            replaced = hook(self, args)
            if replaced is not None:
                args = replaced if isinstance(replaced, tuple) else (replaced,)
        call = None
        if (self._backward_hooks or self._backward_pre_hooks) and is_grad_enabled():
            call = _BackwardHookCall(self, args)
            args = call.wrap_inputs(args)
        out = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks.values()):
            replaced = hook(self, args, out)
            if replaced is not None:
                out = replaced
        if call is not None:
            out = call.wrap_output(out)
        creator = getattr(out, "creator", None)
        if creator is not None:                      # where this call ends, for viz.draw_graph(collapse=model)
            note_call(creator, self, given)
        return out

    def register_forward_hook(self, fn):
        """Call ``fn(module, inputs, output)`` after every forward; a non-None return replaces the
        output. Returns a handle whose ``.remove()`` unregisters it."""
        return _register(self._forward_hooks, fn, "register_forward_hook", "fn(module, inputs, output)")

    def register_forward_pre_hook(self, fn):
        """Call ``fn(module, inputs)`` before every forward; a non-None return replaces the inputs (a
        single value is taken as a one-element tuple), as in PyTorch. Returns a removable handle."""
        return _register(self._forward_pre_hooks, fn, "register_forward_pre_hook", "fn(module, inputs)")

    def register_full_backward_hook(self, fn):
        """Call ``fn(module, grad_input, grad_output)`` when backward has computed the gradients of this
        module's inputs, as PyTorch's hook of that name.

        ``grad_input``: a tuple with, for each positional input, the gradient (an ndarray) of the loss
        with respect to it *through this module* (a tensor also used elsewhere gets the rest of its
        gradient there), or None for an input that needs no gradient; ``grad_output``: a one-element
        tuple, the gradient of the module's output. A non-None return (a tuple or list of the same length
        and shapes; a bare array is an error, as in PyTorch) replaces ``grad_input``: what flows on to the
        layers before; a None in it stops that input's gradient here (``x.grad`` stays None if this was its
        only use). Runs once per call of the module in the forward pass (a layer called twice, such as a
        block's ReLU, runs it twice), with the hooks registered when that call ran: removing a handle after
        forward does not stop it in the coming backward (as in PyTorch). Supported: a module whose output
        is one Tensor and which has at most one input that requires grad (every layer and block here).
        Returns a handle whose ``.remove()`` unregisters it.
        """
        return _register(self._backward_hooks, fn, "register_full_backward_hook",
                         "fn(module, grad_input, grad_output)")

    def register_full_backward_pre_hook(self, fn):
        """Call ``fn(module, grad_output)`` when the gradient of this module's output is known, before the
        module's own backward; a non-None return (a one-element tuple, of the output's shape) replaces
        ``grad_output``, also in what ``register_full_backward_hook`` receives. As there, the hooks are
        those registered when the module was called. Returns a removable handle."""
        return _register(self._backward_pre_hooks, fn, "register_full_backward_pre_hook", "fn(module, grad_output)")

    def macs(self, inputs, output):
        """Multiply-accumulates of one call with these inputs and output (0 unless a layer says)."""
        return 0

    # ------------------------------------------------------------------ traversal
    def named_children(self):
        for name, module in self._modules.items():
            if module is not None:
                yield name, module

    def children(self):
        for _, module in self.named_children():
            yield module

    def named_modules(self, prefix="", memo=None):
        """This module and every descendant, each once, as (dotted name, module); the root is ""."""
        memo = set() if memo is None else memo
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, child in self.named_children():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name, memo)

    def modules(self):
        for _, module in self.named_modules():
            yield module

    def _named_members(self, registry, recurse):
        seen = set()
        modules = self.named_modules() if recurse else [("", self)]
        for prefix, module in modules:
            for name, value in getattr(module, registry).items():
                if value is None or id(value) in seen:
                    continue
                seen.add(id(value))
                yield (f"{prefix}.{name}" if prefix else name), value

    def named_parameters(self, recurse=True):
        """(dotted name, Parameter) pairs; a parameter shared by two layers appears once."""
        yield from self._named_members("_parameters", recurse)

    def parameters(self, recurse=True):
        for _, p in self.named_parameters(recurse):
            yield p

    def named_buffers(self, recurse=True):
        """(dotted name, ndarray) pairs of the buffers (BN running statistics)."""
        yield from self._named_members("_buffers", recurse)

    def buffers(self, recurse=True):
        for _, b in self.named_buffers(recurse):
            yield b

    def num_parameters(self, trainable_only=False):
        """The number of scalar weights (each shared parameter counted once)."""
        return sum(int(p.size) for p in self.parameters() if p.requires_grad or not trainable_only)

    # ------------------------------------------------------------------ modes and gradients
    def train(self, mode=True):
        """Training mode (BN uses batch statistics and updates its running ones); returns self."""
        for module in self.modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self):
        """Evaluation mode (BN uses its running statistics); returns self."""
        return self.train(False)

    def zero_grad(self):
        """Drop every parameter's ``.grad`` (set it to None, as PyTorch does by default)."""
        for p in self.parameters():
            p.grad = None

    def requires_grad_(self, flag=True):
        for p in self.parameters():
            p.requires_grad_(flag)
        return self

    # ------------------------------------------------------------------ device and dtype
    def to(self, device=None, dtype=None):
        """Move parameters and buffers to ``device`` ("cpu" or "cuda") and/or cast floating ones to
        ``dtype``, in place (the Parameter objects stay the same, so an optimiser keeps working).

        ``model.to("cuda")``, ``model.to(dtype=np.float64)``, ``model.to(np.float64)``.
        """
        if device is not None and not isinstance(device, str):
            device, dtype = None, device      # model.to(np.float64)
        if device is not None:
            device = check_device(device)

        def convert(a):
            if dtype is not None and a.dtype.kind == "f":
                a = a.astype(dtype)
            return to_device(a, device) if device is not None else a

        for module in self.modules():
            for p in module._parameters.values():
                if p is not None:
                    p.data = convert(p.data)
                    if p.grad is not None:
                        p.grad = convert(p.grad)
            for name, b in module._buffers.items():
                if b is not None:
                    module._buffers[name] = convert(b)
        return self

    def cpu(self):
        return self.to("cpu")

    def cuda(self):
        return self.to("cuda")

    def double(self):
        """Cast floating parameters and buffers to float64 (for gradient checks and parity tests)."""
        return self.to(dtype=np.float64)

    def float(self):
        return self.to(dtype=np.float32)

    # ------------------------------------------------------------------ weights
    def _state_entries(self):
        """(dotted name, Parameter or buffer array) for every parameter and buffer, in state_dict order."""
        for prefix, module in self.named_modules():
            for registry in (module._parameters, module._buffers):
                for name, value in registry.items():
                    if value is not None:
                        yield (f"{prefix}.{name}" if prefix else name), value

    def state_dict(self):
        """An OrderedDict name -> NumPy array (a host copy) of every parameter and buffer."""
        return OrderedDict((key, np.array(to_numpy(_raw(value)))) for key, value in self._state_entries())

    def load_state_dict(self, state_dict, strict=True):
        """Copy arrays from ``state_dict`` into this module's parameters and buffers, in place.

        With ``strict=True`` the keys must match exactly (a missing ``num_batches_tracked`` is
        tolerated: older checkpoints lack it). A shape mismatch is always an error. Everything is
        checked before anything is written, so a failed load leaves the model unchanged: it raises
        ``StateDictMismatch`` (a RuntimeError) naming the keys. Returns
        ``IncompatibleKeys(missing_keys, unexpected_keys)``.
        """
        targets = {key: _raw(value) for key, value in self._state_entries()}     # the arrays to write into
        missing = [k for k in targets if k not in state_dict and not k.endswith(OPTIONAL_KEY_SUFFIXES)]
        unexpected = [k for k in state_dict if k not in targets]
        given = {key: np.asarray(_host(value)) for key, value in state_dict.items() if key in targets}
        wrong_shape = [(key, tuple(value.shape), tuple(targets[key].shape)) for key, value in given.items()
                       if tuple(value.shape) != tuple(targets[key].shape)]
        problems = []
        if wrong_shape:
            problems.append(f"size mismatch ({len(wrong_shape)}): " + shorten(
                [f"{key}: checkpoint has shape {theirs}, this model has {ours}" for key, theirs, ours in wrong_shape],
                limit=5, sep="; "))
        if strict and missing:
            problems.append(f"missing keys ({len(missing)}): {shorten(missing)}")
        if strict and unexpected:
            problems.append(f"unexpected keys ({len(unexpected)}): {shorten(unexpected)}")
        if not strict and targets and not given:          # strict=False must never load nothing in silence
            problems.append(f"none of the state_dict's {len(state_dict)} keys is a parameter or buffer of this "
                            f"model, so strict=False would load nothing (the state_dict has "
                            f"{shorten(list(state_dict), 3) or 'no keys'}; the model has "
                            f"{shorten(list(targets), 3)})")
        if problems:
            prefix = _wrapper_prefix(state_dict, targets)
            if prefix is not None:
                hint = (f"every key of the state_dict starts with {prefix!r}{_PREFIX_ORIGINS.get(prefix, '')}; "
                        f"strip it: {{k.removeprefix({prefix!r}): v for k, v in state_dict.items()}}")
            else:
                hint = ("check that the model was built with the same arguments (num_classes, in_channels, "
                        "shortcut, stem) as the checkpoint")
                if not wrong_shape and given:
                    hint += ", or pass strict=False to load only the matching keys"
            raise StateDictMismatch(f"error(s) loading state_dict into {type(self).__name__}:\n  "
                                    + "\n  ".join(problems) + f"\n  ({hint})",
                                    missing if strict else [], unexpected if strict else [], wrong_shape)
        for key, value in given.items():
            target = targets[key]
            target[...] = to_device(value.astype(target.dtype, copy=False), device_of(target))
        return IncompatibleKeys(missing, unexpected)

    def save(self, path):
        """Write ``state_dict()`` to ``path`` (.npz) atomically: an interrupted save keeps the old file."""
        save_npz(path, self.state_dict())

    def load(self, path, strict=True):
        """Load weights saved by ``save``, converted by ``tinyresnet convert-torch``, or the model part
        of a training checkpoint (``runs/.../best.npz``; ``training.load_trained_model`` also rebuilds
        the model it was trained as)."""
        return self.load_state_dict(load_weights(path), strict=strict)

    # ------------------------------------------------------------------ printing
    def extra_repr(self):
        """The arguments shown between the parentheses of this module's repr."""
        return ""

    def __repr__(self):
        children = [(name, repr(m)) for name, m in self._modules.items() if m is not None]
        if not children:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"{type(self).__name__}("]
        if self.extra_repr():
            lines.append("  " + self.extra_repr())
        for name, text in children:
            lines.append(f"  ({name}): " + text.replace("\n", "\n  "))
        return "\n".join(lines) + "\n)"


def _register(hooks, fn, method, signature):
    if not callable(fn):
        raise TypeError(f"{method} needs a function {signature}, got {type(fn).__name__} {fn!r}")
    handle = RemovableHandle(hooks)
    hooks[handle.id] = fn
    return handle


_CALL_NUMBERS = itertools.count()      # numbers module calls in the order they end (for viz's "relu#2")


def note_call(creator, module, inputs):
    """Note on ``creator`` (the op that made a module call's output) which module ended there and where its
    inputs came from: ``creator.module_calls``, innermost call first, read by ``viz`` to draw a module as one
    box. A list of (module, the ops that made its inputs, a number that grows with every call)."""
    made_by = tuple(t.creator for t in inputs if isinstance(t, Tensor) and t.creator is not None)
    calls = vars(creator).setdefault("module_calls", [])
    calls.append((module, made_by, next(_CALL_NUMBERS)))


class BackwardHookFunction(Function):
    """The identity, placed where a module call's input enters or its output leaves, so that a hook on its
    output sees the gradient at that place only (through this module, not the tensor's other uses).

    Shapes: x -> x (the same array)
    Saves:  nothing. ``drop_gradient``: set by a module's backward hook that returned None for this
    input's gradient; backward then passes no gradient on (as PyTorch does).
    """

    is_hook = True            # viz draws the graph without these
    drop_gradient = False

    def forward(self, x):
        return x

    def backward(self, dout):
        return None if self.drop_gradient else dout


def pass_through_hook(x, on_grad):
    """``x`` through a ``BackwardHookFunction`` whose output calls ``on_grad(grad)`` in backward (its result
    replaces the gradient when not None); ``x`` itself when it needs no gradient."""
    if not (isinstance(x, Tensor) and x.requires_grad and is_grad_enabled()):
        return x
    out = BackwardHookFunction()(x)
    out.register_hook(on_grad)
    return out


class _BackwardHookCall:
    """One call of a module with backward hooks: wraps its input and output, and calls the hooks with
    ``grad_output`` (from the output's wrapper) and ``grad_input`` (from the input's wrapper).

    The hooks are the ones registered when the module was called (as in PyTorch): a handle removed
    between forward and backward still runs in that backward, and a hook added then does not."""

    def __init__(self, module, args):
        self.module, self.size, self.grad_output = module, len(args), None
        self.hooks = list(module._backward_hooks.values())
        self.pre_hooks = list(module._backward_pre_hooks.values())
        self.input_op = None                       # the BackwardHookFunction on the input, once wrapped
        wanted = [i for i, a in enumerate(args) if isinstance(a, Tensor) and a.requires_grad]
        if len(wanted) > 1:
            raise NotImplementedError(
                f"{type(module).__name__} has backward hooks and was called with {len(wanted)} inputs that require "
                f"grad (positions {wanted}); full backward hooks support modules with at most one such input: "
                f"register a hook on each input tensor instead (Tensor.register_hook)")
        self.index = wanted[0] if wanted else None

    def wrap_inputs(self, args):
        if self.index is None:
            return args
        args = list(args)
        args[self.index] = pass_through_hook(args[self.index], self.on_grad_input)
        self.input_op = args[self.index].creator
        return tuple(args)

    def wrap_output(self, out):
        if isinstance(out, Tensor):
            return pass_through_hook(out, self.on_grad_output)
        raise NotImplementedError(f"{type(self.module).__name__} has backward hooks but returned "
                                  f"{type(out).__name__}; full backward hooks support modules returning one Tensor")

    def on_grad_output(self, grad):
        grad_output = (grad,)
        for hook in self.pre_hooks:
            replaced = hook(self.module, grad_output)
            if replaced is not None:
                grad_output = self._checked(replaced, grad_output, "register_full_backward_pre_hook", "grad_output")
        self.grad_output = grad_output
        if self.index is None:                     # no input needs a gradient: the hooks run now, with Nones
            self.run_hooks((None,) * self.size)
        return grad_output[0]

    def on_grad_input(self, grad):
        grad_input = tuple(grad if i == self.index else None for i in range(self.size))
        new = self.run_hooks(grad_input)[self.index]
        self.input_op.drop_gradient = new is None      # a hook returned None for it: no gradient flows on
        return new

    def run_hooks(self, grad_input):
        for hook in self.hooks:
            replaced = hook(self.module, grad_input, self.grad_output)
            if replaced is not None:
                grad_input = self._checked(replaced, grad_input, "register_full_backward_hook", "grad_input")
        return grad_input

    def _checked(self, value, old, method, what):
        """A hook's replacement for ``old`` (``grad_input`` or ``grad_output``) as a tuple of arrays (or None),
        after checking that it is a tuple (or list) of the same length and shapes."""
        module = type(self.module).__name__
        where = f"a hook given to {module}.{method}"
        if not isinstance(value, (tuple, list)):
            raise RuntimeError(f"{where} returned a {type(value).__name__} for {what}; return a tuple with one "
                               f"gradient per entry of {what} (here ({what}[0] * 0.5,), for example), or None to "
                               f"keep it")
        if len(value) != len(old):
            raise RuntimeError(f"{where} returned {len(value)} gradients for {what}, which has {len(old)}; return a "
                               f"tuple of the same length (None where there is no gradient), or None to keep it")
        new = tuple(v.data if isinstance(v, Tensor) else v for v in value)
        for i, (v, g) in enumerate(zip(new, old)):
            if v is not None and g is not None and tuple(np.shape(v)) != tuple(g.shape):
                raise RuntimeError(f"{where} returned a gradient of shape {tuple(np.shape(v))} for {what}[{i}], which "
                                   f"has shape {tuple(g.shape)}; return an array of the same shape as {what}[{i}]")
        return new


def _raw(value):
    return value.data if isinstance(value, Tensor) else value


def _host(value):
    """A checkpoint entry as something np.asarray reads: a Tensor's data, a CuPy array on the host."""
    value = _raw(value)
    if hasattr(value, "detach") and hasattr(value, "cpu"):     # a torch.Tensor
        value = value.detach().cpu().numpy()
    return to_numpy(value)


def save(module, path):
    """``module.save(path)`` as a function."""
    module.save(path)


def load(module, path, strict=True):
    """``module.load(path, strict)`` as a function."""
    return module.load(path, strict=strict)
