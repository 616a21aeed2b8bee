"""Reverse-mode automatic differentiation: ``Tensor``, ``Function`` and ``backward``.

A ``Tensor`` wraps an ndarray (NumPy or CuPy). Calling a ``Function`` on tensors runs its
``forward`` on the raw arrays and, unless ``no_grad()`` is active, records the function as
the output's ``creator``. ``Tensor.backward()`` walks those records in reverse topological
order, asks each function for the gradients of its inputs, and adds up the gradients of a
tensor that fed several consumers (the skip connection uses ``x`` twice).

The graph keeps what backward needs and no more: each function keeps the arrays its backward
reads (its ``Saves:``) and, of each input, an ``Edge``: the function that made it, or the leaf
itself (a weight, whose ``.grad`` receives the gradient). An intermediate tensor's array is freed
as soon as nothing else holds it, as in PyTorch; keeping the inputs themselves would hold every
map of the network until backward (twice the memory of a ResNet-50 training step).
"""

import functools
import inspect
import numbers
import operator
import os
import sys
import weakref
from typing import NamedTuple

import numpy as np

from .backend import check_device, device_of, get_array_module, to_device, to_numpy
from .tiers import implementation

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class _Config:
    enable_grad = True


class no_grad:
    """Inside this block, functions record nothing: no graph, nothing saved for backward.

    As in PyTorch, three spellings: ``with no_grad(): ...``, and as a decorator of a function,
    ``@no_grad()`` or ``@no_grad``, whose every call then runs under it. Blocks nest, and leaving one
    (also by an exception) puts back whatever was in force before it. A generator function cannot be
    decorated (the block would end before its body runs): write ``with no_grad():`` inside it.
    """

    def __new__(cls, func=None):
        if callable(func) and not isinstance(func, bool):
            return cls()(func)                   # @no_grad without parentheses
        return super().__new__(cls)

    def __init__(self, func=None):
        if func is not None:
            raise TypeError(f"{type(self).__name__}() takes no argument, got {func!r}; write "
                            f"`with {type(self).__name__}():` or decorate a function with it")
        self._saved = []                         # a stack: a decorated function may call itself

    def _grad_enabled_inside(self, previous):
        return False

    def __enter__(self):
        self._saved.append(_Config.enable_grad)
        _Config.enable_grad = self._grad_enabled_inside(_Config.enable_grad)

    def __exit__(self, *exc_info):
        _Config.enable_grad = self._saved.pop()
        return False

    def __call__(self, func):
        if not callable(func):
            raise TypeError(f"{type(self).__name__}() decorates a function, got {type(func).__name__} {func!r}")
        if inspect.isgeneratorfunction(func):
            raise TypeError(f"{type(self).__name__} cannot decorate the generator function {func.__name__}: "
                            f"the block would end before its body runs; write `with "
                            f"{type(self).__name__}():` inside the generator instead")

        @functools.wraps(func)
        def run_without_grad(*args, **kwargs):
            with self:
                return func(*args, **kwargs)

        return run_without_grad


class inference_mode(no_grad):
    """``no_grad`` by PyTorch's other name: ``with inference_mode(): ...``, ``@inference_mode()`` or
    ``@inference_mode``. ``inference_mode(False)`` changes nothing (gradients stay as they were).
    tinyresnet has no separate inference tensors: it is exactly ``no_grad``."""

    def __init__(self, mode=True):
        if not isinstance(mode, bool):
            raise TypeError(f"inference_mode(mode) takes True or False, got {mode!r}")
        self.mode = mode
        self._saved = []

    def _grad_enabled_inside(self, previous):
        return False if self.mode else previous


def is_grad_enabled():
    return _Config.enable_grad


def _user_frame():
    """``file:line`` of the first caller outside the tinyresnet package (where an op was made)."""
    frame = sys._getframe(2)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
    if frame is None:
        return None
    return f"{frame.f_code.co_filename}:{frame.f_lineno}"


class RemovableHandle:
    """What ``register_hook`` and the module hook registrations return; ``.remove()`` unregisters the hook.

    Also a context manager: ``with t.register_hook(fn): ...`` removes the hook when the block ends.
    """

    _next_id = 0

    def __init__(self, hooks):
        self.hooks, self.id = hooks, RemovableHandle._next_id
        RemovableHandle._next_id += 1

    def remove(self):
        self.hooks.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


def _add_hook(owner, fn):
    """Put ``fn`` in ``owner._hooks`` (a dict made on first use: nothing to check while none is registered)."""
    if not callable(fn):
        raise TypeError(f"register_hook needs a function fn(grad), got {type(fn).__name__} {fn!r}")
    if "_hooks" not in vars(owner):
        owner._hooks = {}
    handle = RemovableHandle(owner._hooks)
    owner._hooks[handle.id] = fn
    return handle


def _run_hooks(hooks, grad, what):
    """Call each hook on ``grad`` in the order registered; a non-None result replaces the gradient."""
    for fn in list(hooks.values()):
        new = fn(grad)
        if new is None:
            continue
        new = new.data if isinstance(new, Tensor) else get_array_module(grad).asarray(new)
        if tuple(new.shape) != tuple(grad.shape):
            raise RuntimeError(f"the hook {getattr(fn, '__name__', fn)!r} on {what} returned a gradient of shape "
                               f"{tuple(new.shape)} for a gradient of shape {tuple(grad.shape)}; return an array of "
                               f"the same shape (or None to keep the gradient)")
        grad = new if new.dtype == grad.dtype else new.astype(grad.dtype)
    return grad


_HELD_FOR_HOOKS = {}   # id(leaf) -> (leaf, gradient summed so far in this backward), for leaves with hooks


def _flush_leaf_hooks():
    """At the end of a backward: each hooked leaf's hooks see its whole gradient; the result goes to ``.grad``."""
    while _HELD_FOR_HOOKS:
        leaf, g = _HELD_FOR_HOOKS.pop(next(iter(_HELD_FOR_HOOKS)))
        leaf._add_to_grad(_run_hooks(leaf._hooks, g, f"a leaf of shape {leaf.shape}"))


class Edge:
    """What a recorded function keeps of one input: where its gradient goes, not its data.

    ``creator``: the Function that made the input (None for a leaf); ``leaf``: the input itself when
    it is a leaf (its ``.grad`` is where a gradient accumulates), else None; its ``shape``, ``dtype``
    and ``requires_grad``; and its version counter with the version forward saw (``Function.check_versions``).
    """

    __slots__ = ("creator", "leaf", "shape", "dtype", "requires_grad", "versions", "version")

    def __init__(self, t):
        self.creator = t.creator
        self.leaf = t if t.creator is None else None
        self.shape, self.dtype, self.requires_grad = t.shape, t.dtype, t.requires_grad
        self.versions, self.version = t._versions, t._versions[0]

    def __repr__(self):
        source = f"made by {self.creator.name}" if self.creator is not None else "a leaf"
        return f"Edge(shape={self.shape}, dtype={self.dtype}, {source})"


class Function:
    """One differentiable operation on raw arrays.

    Subclasses implement ``forward(*arrays) -> array`` and ``backward(dout) -> grads``, one
    gradient per forward input, in order (``None`` where an input needs none). What forward
    keeps for backward is stored on ``self``; non-differentiable arguments (stride, eps,
    running statistics) are given to ``__init__``. ``self.needs_input_grad`` tells backward
    which gradients are wanted, so it can skip work; forward may read it too (all False under
    ``no_grad``: nothing needs saving for a backward that will not come).

    A recorded function also notes each input's version (``Tensor._version``, the count of in-place
    changes to its data); backward refuses to run if one has changed since, because what forward
    saved would no longer match the data (``check_versions``).
    """

    released = False       # set by ``release()``
    _hooks = None          # gradient hooks on the output (``Tensor.register_hook``); a dict once one is added

    def edges(self):
        """The input edges of a recorded function (none once released, or when it was not recorded)."""
        return vars(self).get("inputs", ())

    def __call__(self, *inputs):
        tensors = [x if isinstance(x, Tensor) else Tensor(x) for x in inputs]
        record = _Config.enable_grad and any(t.requires_grad for t in tensors)
        self.needs_input_grad = tuple(record and t.requires_grad for t in tensors)   # all False under no_grad
        out = Tensor(self.forward(*[t.data for t in tensors]))
        if record:
            out.requires_grad = True
            out.creator = self
            self.inputs = [Edge(t) for t in tensors]        # not the tensors: their arrays may be freed
            self.output_ref = weakref.ref(out)                # for retain_grad(); the graph holds no output
            self.output_shape = out.shape
            self.created_at = _user_frame()
        return out

    def check_versions(self):
        """Fail, naming this op and the input, if an input was changed in place after forward saved it."""
        for i, x in enumerate(self.inputs):
            if x.versions[0] != x.version:
                where = f" (created at {self.created_at})" if self.created_at else ""
                raise RuntimeError(
                    f"input {i} of {self.name}{where}, a tensor of shape {x.shape}, was modified in place "
                    f"after the forward pass: it is at version {x.versions[0]}, but the forward pass saw "
                    f"version {x.version}, so the gradient would be computed from the wrong values. Call "
                    f"backward() before optimizer.step() (or before changing the tensor), or run the "
                    f"forward pass again")

    def forward(self, *arrays):
        raise NotImplementedError

    def backward(self, dout):
        raise NotImplementedError

    @property
    def name(self):
        return type(self).__name__

    def release(self):
        """Drop the graph edges and everything saved for backward."""
        self.__dict__.clear()
        self.released = True


class BackwardError(RuntimeError):
    """An exception raised inside an op's backward, wrapped to name the op and its origin."""


class Tensor:
    """An n-dimensional array that can record the operations applied to it.

    Attributes: ``data`` (the ndarray), ``grad`` (an ndarray of the same shape and dtype after
    ``backward()``, or None), ``requires_grad``, ``creator`` (the Function that made it), and
    ``_version``: how many times the data was changed in place, as ``p.data -= lr * g`` in the
    optimizers does (see ``data``).
    """

    __array_priority__ = 1000  # so ndarray <op> Tensor defers to Tensor's reflected operator
    _hooks = None              # a leaf's gradient hooks (``register_hook``); a dict once one is added

    def __init__(self, data, requires_grad=False, dtype=None, device=None):
        source = data if isinstance(data, Tensor) else None
        if source is not None:
            data = source.data
        is_array = hasattr(data, "dtype") and hasattr(data, "shape")
        data = data if is_array else np.asarray(data)
        if dtype is not None:
            data = data.astype(dtype, copy=False)
        elif not is_array and data.dtype == np.float64:
            data = data.astype(np.float32)  # Python floats become float32, as in PyTorch
        if data.dtype.kind == "O":
            raise TypeError("Tensor data has dtype object; pass a numeric array (float32 or float64)")
        if device is not None:
            data = to_device(data, device)
        self._data = data
        # [count of in-place changes], one list shared by the tensors that share this array (detach, Tensor(t))
        self._versions = source._versions if source is not None and source.data is data else [0]
        self.grad = None
        self.creator = None
        self._retain_grad = False
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    # ------------------------------------------------------------------ properties
    @property
    def data(self):
        """The ndarray. ``t.data -= x`` (an in-place change: the same array assigned back) counts one
        more version; assigning a different array does not (what backward saved is the old one)."""
        return self._data

    @data.setter
    def data(self, array):
        if array is self._data:
            self._versions[0] += 1
        self._data = array

    @property
    def _version(self):
        """How many times this tensor's data has been changed in place (PyTorch's ``_version``)."""
        return self._versions[0]

    @property
    def shape(self):
        return tuple(self.data.shape)

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def size(self):
        """The number of elements, as NumPy's ``a.size``; called, the shape, as PyTorch's ``t.size()``.

        ``t.size`` is an ``ElementCount``: an ``int`` (arithmetic, comparisons, ``int()``, ``range()``
        and f-strings all see the count, 6 for a (2, 3) tensor) that can be called: ``t.size()`` is
        the shape ``(2, 3)`` and ``t.size(1)`` (or ``t.size(-1)``) is ``3``, as in PyTorch. Both
        spellings work, so NumPy-style code (``int(p.size)``) and PyTorch-style code run unchanged;
        ``numel()`` is the count by PyTorch's name. The one difference from PyTorch: the bare attribute
        is a number there a bound method (``t.size == 6`` is True here, False in PyTorch).
        """
        return ElementCount(self.data.size, self.shape)

    def numel(self):
        """The number of elements (``torch.Tensor.numel``), a plain int."""
        return int(self.data.size)

    def dim(self):
        """The number of dimensions (``torch.Tensor.dim``), as ``ndim``."""
        return self.ndim

    @property
    def device(self):
        return device_of(self.data)

    @property
    def is_leaf(self):
        return self.creator is None

    def __len__(self):
        return len(self.data)

    def __bool__(self):
        if self.size != 1:
            raise RuntimeError(f"the truth value of a tensor of shape {self.shape} ({self.size} elements) is "
                               f"ambiguous; use .item() on a one-element tensor, or .numpy().any() or "
                               f".numpy().all() to ask about every element")
        return bool(self.data)

    def __repr__(self):
        body = repr(to_numpy(self.data)).replace("array(", "tensor(", 1)
        extras = []
        if self.device != "cpu":
            extras.append(f"device='{self.device}'")
        if self.creator is not None:
            extras.append(f"grad_fn={self.creator.name}")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        if extras:
            body = body[:-1] + ", " + ", ".join(extras) + ")"
        return body

    # ------------------------------------------------------------------ grad bookkeeping
    def requires_grad_(self, flag=True):
        if flag and self.data.dtype.kind != "f":
            raise TypeError(f"only floating-point tensors can require gradients, got dtype "
                            f"{self.dtype}; convert with .astype(np.float32) first")
        self.requires_grad = bool(flag)
        return self

    def retain_grad(self):
        """Keep ``.grad`` on this non-leaf tensor after backward (leaves always keep it)."""
        self._retain_grad = True
        return self

    def register_hook(self, fn):
        """Call ``fn(grad)`` each time backward has computed this tensor's gradient, as PyTorch's hook.

        ``grad`` is an ndarray (as ``.grad``): the whole gradient of this tensor, summed over all its
        consumers, so a hook runs once per backward. If ``fn`` returns an array or a Tensor (of the same
        shape) that replaces the gradient: it is what flows on to the ops before this one, and on a leaf
        what accumulates into ``.grad``; ``None`` keeps it. Hooks run in the order they were registered;
        ``retain_grad`` keeps what the last one returns. The hook of a non-leaf lives in the graph (on the op
        that made the tensor): it runs even if the tensor itself is gone, and is dropped with the graph.
        Returns a handle: ``handle.remove()`` unregisters the hook.
        """
        if not self.requires_grad:
            raise RuntimeError(f"cannot register a hook on a tensor of shape {self.shape} that does not require "
                               f"grad: no gradient will be computed for it; make it with requires_grad=True (or "
                               f"call .requires_grad_() on a leaf) first")
        return _add_hook(self if self.creator is None else self.creator, fn)

    def zero_grad(self):
        self.grad = None

    def detach(self):
        """A tensor sharing this data (and its version count), cut from the graph."""
        return Tensor(self)

    def numpy(self):
        """The data as a NumPy array (copied from the GPU when needed)."""
        return to_numpy(self.data)

    def item(self):
        return self.numpy().item()

    def to(self, *args, device=None, dtype=None):
        """This tensor on ``device`` ("cpu" or "cuda") and/or in ``dtype``, as ``torch.Tensor.to``:
        ``t.to("cuda")``, ``t.to(np.float64)``, ``t.to("cuda", np.float32)``, ``t.to(device=..., dtype=...)``.
        Differentiable, like any op (a float cast as ``float()``); ``self`` when nothing changes."""
        for arg in args:
            if _names_dtype(arg):
                dtype = arg
            else:
                device = arg
        out = self if dtype is None else self._cast_to(dtype)
        if device is None:
            return out
        device = check_device(device)
        return out if device == out.device else _ops.ToDeviceFunction(device)(out)

    def cpu(self):
        return self.to("cpu")

    def cuda(self):
        return self.to("cuda")

    def astype(self, dtype):
        return Tensor(self.data.astype(dtype), requires_grad=self.requires_grad and self.is_leaf)

    def float(self):
        """This tensor as float32 (``torch.Tensor.float``); ``self`` if it already is.

        From a floating-point tensor the cast stays in the graph (``CastFunction``: the gradient
        comes back in the source's dtype); an integer tensor has no gradient to carry."""
        return self._cast_to(np.float32)

    def double(self):
        """This tensor as float64 (``torch.Tensor.double``); differentiable as ``float()``."""
        return self._cast_to(np.float64)

    def long(self):
        """This tensor as int64 (``torch.Tensor.long``), truncating toward zero; outside the graph:
        an integer tensor has no gradient (as in PyTorch, the result has ``requires_grad=False``)."""
        return self._cast_to(np.int64)

    def int(self):
        """This tensor as int32 (``torch.Tensor.int``); outside the graph, as ``long()``."""
        return self._cast_to(np.int32)

    def _cast_to(self, dtype):
        dtype = np.dtype(dtype)
        if dtype == self.dtype:
            return self                                   # as PyTorch: no copy when nothing changes
        if dtype.kind == "f":
            return _ops.CastFunction(dtype)(self)         # records only when self requires grad
        return Tensor(self.data.astype(dtype))            # integers and bools carry no gradient

    # ------------------------------------------------------------------ backward
    def backward(self, grad=None, retain_graph=False):
        """Accumulate d(self)/d(leaf) into ``.grad`` of every leaf that requires grad.

        ``grad`` is d(loss)/d(self); a scalar may omit it (it is 1). Functions are visited in
        reverse topological order, found without recursion so that deep graphs work. The
        graph is freed afterwards unless ``retain_graph=True``.
        """
        if not self.requires_grad:
            raise RuntimeError("backward() called on a tensor that does not require grad: none of "
                               "its inputs had requires_grad=True (or it was made under no_grad())")
        xp = get_array_module(self.data)
        if grad is None:
            if self.size != 1:
                raise RuntimeError(f"backward() without a gradient needs a scalar, but this tensor "
                                   f"has shape {self.shape}; pass grad= of that shape, or reduce "
                                   f"it first (for example .sum() or .mean())")
            grad = xp.ones_like(self.data)
        _HELD_FOR_HOOKS.clear()                   # nothing left over from a backward that failed
        grad = grad.data if isinstance(grad, Tensor) else xp.asarray(grad, dtype=self.dtype)
        if grad.dtype != self.dtype:
            grad = grad.astype(self.dtype)        # a gradient has its tensor's dtype, as in PyTorch
        if tuple(grad.shape) != self.shape:
            raise ValueError(f"backward(grad=...) got shape {tuple(grad.shape)} for a tensor of "
                             f"shape {self.shape}")
        if self.creator is None:
            self._accumulate(grad)
            _flush_leaf_hooks()
            return

        ### BEGIN SOLUTION autograd_backward
        order = _topological_order(self.creator)
        pending = {id(self.creator): grad}     # id(function) -> the gradient flowing into its output
        for fn in order:
            if fn.released:
                raise RuntimeError(f"the graph through {fn.name} was already freed by an earlier "
                                   f"backward(); call backward(retain_graph=True) the first time")
            dout = pending.pop(id(fn), None)
            if dout is None:
                continue
            out = fn.output_ref()                 # the output tensor, if anything still holds it
            if out is not None and out._retain_grad:
                out._accumulate(dout)
            fn.check_versions()
            input_grads = _call_backward(fn, dout)
            for x, g in zip(fn.inputs, input_grads):
                if g is None or not x.requires_grad:
                    continue
                if g.dtype != x.dtype:
                    g = g.astype(x.dtype)     # float32 x · float64 y is float64; x's gradient stays float32
                if x.creator is None:
                    x.leaf._accumulate(g)
                elif id(x.creator) in pending:
                    pending[id(x.creator)] = pending[id(x.creator)] + g   # a tensor used twice: gradients add
                else:
                    pending[id(x.creator)] = g
            if not retain_graph:
                fn.release()
        ### END SOLUTION autograd_backward
        _flush_leaf_hooks()

    def _accumulate(self, g):
        if self._hooks:                           # a hooked leaf: held, so its hooks see this backward's sum once
            held = _HELD_FOR_HOOKS.get(id(self))
            _HELD_FOR_HOOKS[id(self)] = (self, g if held is None else held[1] + g)
            return
        self._add_to_grad(g)

    def _add_to_grad(self, g):
        if tuple(g.shape) != self.shape:
            raise RuntimeError(f"internal error: gradient of shape {tuple(g.shape)} for a tensor "
                               f"of shape {self.shape}")
        if g.dtype != self.dtype:
            g = g.astype(self.dtype)
        self.grad = g if self.grad is None else self.grad + g
        if self.grad.dtype != self.dtype:     # a .grad set by hand in another dtype
            self.grad = self.grad.astype(self.dtype)

    # ------------------------------------------------------------------ operators
    # Both operands first take the dtype PyTorch gives the result (``_operands``).
    def __add__(self, other):
        return _add_function()()(*_operands(self, other))

    def __radd__(self, other):
        return _add_function()()(*_operands(self, other, reflected=True))

    def __sub__(self, other):
        return _ops.SubFunction()(*_operands(self, other))

    def __rsub__(self, other):
        return _ops.SubFunction()(*_operands(self, other, reflected=True))

    def __mul__(self, other):
        return _ops.MulFunction()(*_operands(self, other))

    def __rmul__(self, other):
        return _ops.MulFunction()(*_operands(self, other, reflected=True))

    def __truediv__(self, other):
        return _ops.DivFunction()(*_operands(self, other, divide=True))

    def __rtruediv__(self, other):
        return _ops.DivFunction()(*_operands(self, other, reflected=True, divide=True))

    def __matmul__(self, other):
        return _ops.MatMulFunction()(*_operands(self, other))

    def __rmatmul__(self, other):
        return _ops.MatMulFunction()(*_operands(self, other, reflected=True))

    def __neg__(self):
        return _ops.NegFunction()(self)

    # ------------------------------------------------------------------ comparisons
    # Elementwise, as in PyTorch: ``pred == labels`` is a bool tensor (``.sum()``, ``.float().mean()``),
    # outside the graph, since no gradient flows through a comparison. Hashing stays by identity, so a
    # tensor still works as a dict key or in a set; ``t == None`` is False, as in PyTorch.
    __hash__ = object.__hash__

    def _compare(self, other, name, op):
        if other is None:
            return name == "ne"
        a, b = _operands(self, other)
        try:
            return Tensor(op(a.data, b.data))
        except ValueError as e:
            raise ValueError(f"{name}: cannot compare tensors of shapes {a.shape} and {b.shape} (they do not "
                             f"broadcast)") from e

    def eq(self, other):
        return self._compare(other, "eq", operator.eq)

    def ne(self, other):
        return self._compare(other, "ne", operator.ne)

    def lt(self, other):
        return self._compare(other, "lt", operator.lt)

    def le(self, other):
        return self._compare(other, "le", operator.le)

    def gt(self, other):
        return self._compare(other, "gt", operator.gt)

    def ge(self, other):
        return self._compare(other, "ge", operator.ge)

    __eq__, __ne__, __lt__, __le__, __gt__, __ge__ = eq, ne, lt, le, gt, ge

    def clone(self):
        """A copy of the data that stays in the graph (gradients flow back to ``self``), as ``torch.clone``."""
        return self + 0

    def __pow__(self, exponent):
        if isinstance(exponent, Tensor) or np.ndim(exponent) != 0:
            raise TypeError("only a scalar exponent is supported: x ** 2.0")
        if self.dtype.kind == "f":
            return _ops.PowFunction(float(exponent))(self)
        if isinstance(exponent, numbers.Integral) and not isinstance(exponent, bool):
            return _ops.PowFunction(int(exponent))(self)                  # integer ** int stays integer
        return _ops.PowFunction(float(exponent))(_cast(self, DEFAULT_FLOAT))   # integer ** float is float32

    def __getitem__(self, index):
        return _ops.GetItemFunction(index)(self)

    # ------------------------------------------------------------------ shape and reductions
    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return _ops.ReshapeFunction(shape)(self)

    view = reshape

    def flatten(self, start_dim=0, end_dim=-1):
        """Merge dims ``start_dim..end_dim`` into one, as ``torch.flatten``."""
        nd = self.ndim
        start, end = start_dim % nd if nd else 0, end_dim % nd if nd else 0
        merged = int(np.prod(self.shape[start:end + 1]))     # not -1: an empty batch has no size to infer
        shape = self.shape[:start] + (merged,) + self.shape[end + 1:]
        return self.reshape(shape)

    def transpose(self, *axes):
        """``transpose(a, b)`` swaps axes a and b (as ``torch.transpose``, a matrix included);
        ``transpose((p0, p1, ...))`` or all axes as arguments permute them; none reverses them
        (as ``ndarray.transpose``)."""
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            return self.permute(*axes[0])
        if len(axes) == 2:
            perm = list(range(self.ndim))
            perm[axes[0]], perm[axes[1]] = perm[axes[1]], perm[axes[0]]
            axes = tuple(perm)
        return _ops.TransposeFunction(axes or None)(self)

    def permute(self, *axes):
        """Output axis d is input axis ``axes[d]`` (as ``torch.permute``)."""
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return _ops.TransposeFunction(tuple(axes))(self)

    @property
    def T(self):
        return self.transpose()

    def sum(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        """Sum over ``axis`` (an int or a tuple; all by default), by NumPy's names or PyTorch's:
        ``t.sum(1)``, ``t.sum(axis=1, keepdims=True)``, ``t.sum(dim=1, keepdim=True)``."""
        return _ops.SumFunction(*_reduction_arguments("sum", axis, keepdims, dim, keepdim))(self)

    def mean(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        """Mean over ``axis``/``dim``, named as in ``sum``."""
        return _ops.MeanFunction(*_reduction_arguments("mean", axis, keepdims, dim, keepdim))(self)

    def max(self, dim=None, keepdim=False):
        """The largest element, as ``torch.Tensor.max``.

        Without ``dim``: a 0-d tensor; its gradient is shared equally by tied maxima (as PyTorch).
        With ``dim``: a pair ``(values, indices)`` (also ``.values``, ``.indices``): the largest
        value of each row along ``dim`` and its int64 index (the first, on ties), that dim dropped
        unless ``keepdim``; ``values`` is differentiable, the gradient going to that first maximum.
        An empty tensor (or an empty ``dim``) has no maximum: ValueError. Two tensors' elementwise
        maximum (``torch.max(a, b)``) is not supported.
        """
        return self._extremum(True, dim, keepdim)

    def min(self, dim=None, keepdim=False):
        """The smallest element, as ``max`` (the same forms and gradients)."""
        return self._extremum(False, dim, keepdim)

    def argmax(self, dim=None, keepdim=False):
        """The int64 index of the largest element (the first, on ties), as ``torch.argmax``: without
        ``dim``, of the flattened tensor (a 0-d tensor; with ``keepdim``, every dim of size 1); with
        ``dim``, one per row along it. Not differentiable. ``logits.argmax(1)`` is the predicted class."""
        return self._arg_extremum(True, dim, keepdim)

    def argmin(self, dim=None, keepdim=False):
        """The int64 index of the smallest element, as ``argmax``."""
        return self._arg_extremum(False, dim, keepdim)

    def _check_reducible(self, op, dim):
        if dim is None and self.data.size == 0:
            raise ValueError(f"{op}() of an empty tensor (shape {self.shape}) has no value; give a dim, "
                             f"or check the tensor is not empty")
        if dim is not None:
            d = _ops.normalize_dim(dim, self.ndim, op)
            if self.ndim and self.shape[d] == 0:
                raise ValueError(f"{op}(dim={dim}) of a tensor of shape {self.shape}: that dim has no "
                                 f"elements, so there is no value to take")
            return d
        return None

    def _arg_extremum(self, largest, dim, keepdim):
        op = "argmax" if largest else "argmin"
        d = self._check_reducible(op, dim)
        xp = get_array_module(self.data)
        find = xp.argmax if largest else xp.argmin
        if d is None:
            shape = (1,) * self.ndim if keepdim else ()
            return Tensor(xp.asarray(find(self.data.reshape(-1)), dtype=np.int64).reshape(shape))
        if self.ndim == 0:
            return Tensor(xp.zeros((), dtype=np.int64))
        index = find(self.data, axis=d).astype(np.int64)
        return Tensor(xp.expand_dims(index, d) if keepdim else index)

    def _extremum(self, largest, dim, keepdim):
        op = "max" if largest else "min"
        if isinstance(dim, Tensor):
            raise TypeError(f"{op}(other): the elementwise {op}imum of two tensors is not supported; "
                            f"{op}(dim) takes an integer dim")
        if dim is None:
            return _ops.ExtremumFunction(largest)(self)
        d = self._check_reducible(op, dim)
        if self.ndim == 0:
            return ValuesIndices(self.reshape(()), self._arg_extremum(largest, dim, keepdim))
        indices = self._arg_extremum(largest, d, keepdim=True)
        values = _ops.TakeAlongDimFunction(indices.data, d, keepdim)(self)
        return ValuesIndices(values, indices if keepdim else indices.squeeze(d))

    def unsqueeze(self, dim):
        """A view with a new dim of size 1 at ``dim`` (in [-ndim-1, ndim]), as ``torch.unsqueeze``."""
        d = _ops.normalize_dim(dim, self.ndim + 1, "unsqueeze")
        return self.reshape(self.shape[:d] + (1,) + self.shape[d:])

    def squeeze(self, dim=None):
        """Drop dims of size 1, as ``torch.squeeze``: all of them, or only ``dim`` (an int or a tuple);
        a named dim whose size is not 1 is kept, as in PyTorch (no error)."""
        if dim is None:
            dims = range(self.ndim)
        else:
            dims = [_ops.normalize_dim(d, self.ndim, "squeeze") for d in (dim if isinstance(dim, (tuple, list))
                                                                           else (dim,))]
        drop = {d for d in dims if self.ndim and self.shape[d] == 1}
        return self.reshape(tuple(n for k, n in enumerate(self.shape) if k not in drop))

    def exp(self):
        return _ops.ExpFunction()(self)

    def log(self):
        return _ops.LogFunction()(self)


class ElementCount(int):
    """``Tensor.size``: the number of elements, an ``int``, that called gives the shape (``t.size()``)
    or one dim's length (``t.size(dim)``), as PyTorch's ``Tensor.size``. Arithmetic on it gives plain ints."""

    def __new__(cls, count, shape=()):
        number = super().__new__(cls, count)
        number.shape = tuple(shape)
        return number

    def __call__(self, dim=None):
        if dim is None:
            return self.shape
        return self.shape[_ops.normalize_dim(dim, len(self.shape), "size")]

    def __reduce__(self):                 # a copy or a pickle is the plain count
        return int, (int(self),)


class ValuesIndices(NamedTuple):
    """What ``max(dim)``/``min(dim)`` return, as PyTorch's: the values and their int64 indices."""

    values: "Tensor"
    indices: "Tensor"


def _names_dtype(value):
    """Whether ``Tensor.to``'s argument is a dtype (np.float32, "float64", np.dtype) rather than a device."""
    if isinstance(value, str):
        try:
            np.dtype(value)
        except TypeError:
            return False                  # "cpu", "cuda", "cuda:0"
        return True
    return isinstance(value, (type, np.dtype))


def _reduction_arguments(op, axis, keepdims, dim, keepdim):
    """(axis, keepdims) from NumPy's names or PyTorch's ``dim``/``keepdim``, which may not both be given."""
    if dim is not None:
        if axis is not None:
            raise TypeError(f"{op}: give axis= or dim=, not both (they mean the same)")
        axis = dim
    if keepdim is not None:
        keepdims = keepdim
    return (tuple(axis) if isinstance(axis, list) else axis), bool(keepdims)


DEFAULT_FLOAT = np.float32          # the dtype of a Python float in a tensor, as PyTorch's default dtype
_KIND_RANK = {"b": 0, "u": 1, "i": 1, "f": 2, "c": 3}   # bool < integer < floating point < complex
_DEFAULT_OF_KIND = {"b": np.bool_, "u": np.int64, "i": np.int64, "f": DEFAULT_FLOAT, "c": np.complex64}


def _operands(tensor, other, reflected=False, divide=False):
    """``tensor`` and ``other`` as two Tensors whose arithmetic gives PyTorch's result dtype.

    PyTorch's promotion, by kind (bool < integer < floating point):
    - ``other`` not a Tensor (a Python number, a list, an array) takes ``tensor``'s dtype, unless it is
      of a higher kind; then both take that kind's default: ``uint8 image * (1/255)`` is float32, as a
      Python float is (not uint8, which would round every pixel to 0), and ``int64 + 0.5`` is float32.
    - Two tensors of different kinds: the lower-kind one takes the other's dtype (int64 + float32 is
      float32). Of the same kind NumPy promotes, as PyTorch does (float32 + float64 is float64).
    - True division of two integer (or bool) operands is float32.
    Only integer and bool tensors are ever converted, and they never require grad, so nothing is
    lost from the graph. ``reflected`` (``2.0 - x``) puts ``other`` first.
    """
    xp = get_array_module(tensor.data)
    if not isinstance(other, Tensor):
        kind = xp.asarray(other).dtype.kind
        if kind not in _KIND_RANK:
            raise TypeError(f"cannot do arithmetic between a tensor and {type(other).__name__} {other!r}; "
                            f"use a number, an array of numbers or a Tensor")
        target = tensor.dtype if _KIND_RANK[kind] <= _KIND_RANK[tensor.dtype.kind] else _DEFAULT_OF_KIND[kind]
        other = Tensor(xp.asarray(other, dtype=target))     # an int too large for the dtype fails here
    target = max(tensor.dtype, other.dtype, key=lambda d: _KIND_RANK[d.kind])   # the higher kind's dtype
    if divide and target.kind != "f":
        target = np.dtype(DEFAULT_FLOAT)
    a, b = _cast_to_kind(tensor, target), _cast_to_kind(other, target)
    return (b, a) if reflected else (a, b)


def _cast_to_kind(t, dtype):
    """``t`` as ``dtype`` if it is of a lower kind (an integer tensor meeting a float), else ``t`` itself."""
    return _cast(t, dtype) if _KIND_RANK[t.dtype.kind] < _KIND_RANK[np.dtype(dtype).kind] else t


def _cast(t, dtype):
    """A new tensor of ``t``'s values in ``dtype``, outside the graph (for integer tensors, which have no gradient)."""
    return Tensor(t.data.astype(dtype))


def _topological_order(root_fn):
    """Functions reachable from ``root_fn``, each before every function it depends on.

    An iterative depth-first search (post-order, then reversed): no recursion, so a chain of
    thousands of ops is fine.
    """
    ### BEGIN SOLUTION autograd_backward:order
    order, seen = [], set()
    stack = [(root_fn, False)]
    while stack:
        fn, expanded = stack.pop()
        if expanded:
            order.append(fn)                # every function it depends on is in ``order`` already
            continue
        if id(fn) in seen:                  # pushed twice (two consumers); expanded the first time
            continue
        seen.add(id(fn))                    # marked when expanded, not when pushed: a function pushed
        stack.append((fn, True))            # early must still finish after everything that uses it
        for x in fn.edges():
            if x.creator is not None and id(x.creator) not in seen:
                stack.append((x.creator, False))
    order.reverse()
    return order
    ### END SOLUTION autograd_backward:order


def _call_backward(fn, dout):
    """Run ``fn.backward`` and check its answer; on error, name the op and where it was made.

    First the hooks on ``fn``'s output (``Tensor.register_hook``), if any, see ``dout`` and may replace it.
    """
    if fn._hooks:
        dout = _run_output_hooks(fn, dout)
    try:
        grads = fn.backward(dout)
    except Exception as e:
        where = f" (created at {fn.created_at})" if getattr(fn, "created_at", None) else ""
        message = f"in the backward pass of {fn.name}{where}"
        if hasattr(e, "add_note"):
            e.add_note(message)
            raise
        raise BackwardError(f"{message}: {type(e).__name__}: {e}") from e
    if not isinstance(grads, tuple):
        grads = (grads,)
    if len(grads) != len(fn.inputs):
        raise RuntimeError(f"{fn.name}.backward returned {len(grads)} gradients for "
                           f"{len(fn.inputs)} inputs; return one per forward input (None if unused)")
    for x, g in zip(fn.inputs, grads):
        if g is not None and tuple(g.shape) != x.shape:
            where = f" (created at {fn.created_at})" if getattr(fn, "created_at", None) else ""
            raise RuntimeError(f"{fn.name}.backward{where} returned a gradient of shape "
                               f"{tuple(g.shape)} for an input of shape {x.shape}")
    return grads


def _run_output_hooks(fn, dout):
    """The hooks on ``fn``'s output; a kept gradient (``retain_grad``) becomes what they return, as in PyTorch."""
    new = _run_hooks(fn._hooks, dout, f"the output of {fn.name}")
    out = fn.output_ref()
    if new is not dout and out is not None and out._retain_grad:
        out.grad = new if out.grad is dout else out.grad - dout + new   # the backward loop kept dout already
    return new


def tensor(data, requires_grad=False, dtype=None, device=None):
    """Make a Tensor, as ``torch.tensor``."""
    return Tensor(data, requires_grad=requires_grad, dtype=dtype, device=device)



class _BasicOps:
    """``tinyresnet.ops.basic``, where Tensor's operators (+, *, @, reshape, sum, ...) are written.

    The one dependency from this module back to the ops, kept in one place: those ops are
    ``Function`` subclasses, so ``ops.basic`` imports this module. It is looked up when an operator
    is first used, never at import time, so there is no import circle.
    """

    def __getattr__(self, name):                 # only for a name not yet looked up
        from .ops import basic
        value = getattr(basic, name)
        setattr(self, name, value)               # from now on a plain attribute read
        return value


_ops = _BasicOps()


def _add_function():
    """The class that runs ``a + b``: ``ops.basic.AddFunction``, or its fast kernel on the fast tier (the residual
    add on the kernels' threads, kept channels-last; ``tinyresnet.tiers``)."""
    return implementation(_ops.AddFunction)
