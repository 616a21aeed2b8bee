"""The autograd engine: gradient accumulation, no_grad, deep graphs, freeing the graph,
Tensor conveniences, dtype rules, and errors raised inside a backward pass."""

import inspect
import sys

import numpy as np
import pytest
import reference as ref

import tinyresnet as tr
from tinyresnet import Function, Tensor, no_grad
from tinyresnet import functional as F
from tinyresnet.autograd import BackwardError
from tinyresnet.backend import gpu_available, to_device, to_numpy
from tinyresnet.ops.basic import MulFunction


def leaf(values, device="cpu"):
    return ref.on_device(device, np.asarray(values, dtype=np.float64))[0]


def line_here():
    """The line number of the caller: where the next op in a test is created."""
    return inspect.currentframe().f_back.f_lineno


# --------------------------------------------------------------------------- accumulation
def test_a_tensor_used_twice_gets_both_gradients(device):
    x, a = leaf([1.0, -2.0, 3.0], device), leaf([0.5, 4.0, -1.0], device)
    y = x * a + x                                                   # x feeds the product and the skip
    y.sum().backward()
    np.testing.assert_allclose(to_numpy(x.grad), to_numpy(a.data) + 1.0)
    np.testing.assert_allclose(to_numpy(a.grad), to_numpy(x.data))


def test_an_intermediate_used_twice_gets_both_gradients(device):
    x = leaf([1.0, 2.0], device)
    h = x * 3.0
    (h * h + h).sum().backward()                                    # dy/dh = 2h + 1, dh/dx = 3
    np.testing.assert_allclose(to_numpy(x.grad), (2 * 3.0 * np.array([1.0, 2.0]) + 1) * 3)


def test_skip_connection_passes_the_gradient_through_unchanged():
    """d/dx [relu(x·w) + x] = relu'(x·w)·w + 1: even with a dead branch the skip gives 1."""
    x, w = leaf([2.0, -3.0]), leaf([-1.0, -1.0])
    (F.relu(x * w) + x).sum().backward()
    np.testing.assert_allclose(x.grad, [1.0, -1.0 + 1.0])


def test_gradients_add_up_across_backward_calls_until_zeroed():
    x = leaf([1.0, 2.0])
    (x * 2.0).sum().backward()
    (x * 3.0).sum().backward()
    np.testing.assert_allclose(x.grad, [5.0, 5.0])
    x.zero_grad()
    assert x.grad is None


# --------------------------------------------------------------------------- no_grad
def test_no_grad_records_nothing():
    x = leaf([1.0, 2.0])
    with no_grad():
        assert not tr.is_grad_enabled()
        y = F.relu(x * 2.0 + 1.0)
    assert tr.is_grad_enabled()
    assert y.creator is None
    assert not y.requires_grad
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.sum().backward()


def test_no_grad_is_restored_after_an_exception():
    with pytest.raises(KeyError):
        with no_grad():
            raise KeyError("inside no_grad")
    assert tr.is_grad_enabled()


def test_nothing_is_recorded_when_no_input_requires_grad():
    x = Tensor(np.ones(3))
    y = x * 2.0
    assert y.creator is None and not y.requires_grad


# --------------------------------------------------------------------------- deep graphs
@pytest.mark.parametrize("length", [1000, 5000])
def test_a_long_chain_backpropagates_without_recursion(length):
    assert length > sys.getrecursionlimit() // 2                   # deep enough to break a recursive walk
    x = leaf([1.0, 2.0])
    y = x
    for _ in range(length):
        y = y * 1.001
    y.sum().backward()
    np.testing.assert_allclose(x.grad, [1.001 ** length] * 2, rtol=1e-10)


# --------------------------------------------------------------------------- backward arguments
def test_backward_on_a_non_scalar_needs_a_gradient():
    y = leaf(np.ones((2, 3))) * 2.0
    with pytest.raises(RuntimeError, match=r"needs a scalar.*shape \(2, 3\).*\.sum\(\)"):
        y.backward()


def test_backward_with_a_gradient_of_the_wrong_shape_names_both_shapes():
    y = leaf(np.ones((2, 3))) * 2.0
    with pytest.raises(ValueError, match=r"shape \(3, 2\) for a tensor of shape \(2, 3\)"):
        y.backward(np.ones((3, 2)))


def test_backward_with_an_explicit_gradient():
    x = leaf([1.0, 2.0, 3.0])
    (x * x).backward(np.array([1.0, 0.0, -1.0]))
    np.testing.assert_allclose(x.grad, [2.0, 0.0, -6.0])


# --------------------------------------------------------------------------- freeing the graph
def test_the_graph_is_freed_after_backward():
    x = leaf([1.0, 2.0])
    y = (x * x).sum()
    y.backward()
    assert not hasattr(y.creator, "inputs"), "SumFunction still holds its inputs after backward"
    with pytest.raises(RuntimeError, match=r"already freed.*retain_graph=True"):
        y.backward()


def test_saved_arrays_are_released_after_backward():
    x = leaf(np.ones((2, 3)))
    h = x * x                                                       # MulFunction saves both inputs
    h.sum().backward()
    saved = {k: v for k, v in vars(h.creator).items() if hasattr(v, "shape") or k == "inputs"}
    assert saved == {}, f"MulFunction still holds {sorted(saved)} after backward"


def test_retain_graph_allows_a_second_backward():
    x = leaf([1.0, 2.0])
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad, 2 * (2 * np.array([1.0, 2.0])))


# --------------------------------------------------------------------------- Tensor conveniences
def test_retain_grad_keeps_an_intermediate_gradient():
    x = leaf([1.0, 2.0])
    h = x * 3.0
    h.retain_grad()
    other = x * 2.0
    (h * h + other).sum().backward()
    np.testing.assert_allclose(h.grad, 2 * 3.0 * np.array([1.0, 2.0]))
    assert other.grad is None                                       # not retained: intermediate grads are dropped
    assert h.is_leaf is False and x.is_leaf is True


def test_detach_shares_data_and_stops_gradients():
    x = leaf([1.0, 2.0])
    d = x.detach()
    assert d.data is x.data and d.creator is None and not d.requires_grad
    (d * x).sum().backward()
    np.testing.assert_allclose(x.grad, [1.0, 2.0])                  # d counted as a constant, not 2x


def test_numpy_returns_a_host_array(device):
    x = leaf([1.0, 2.0], device)
    out = (x * 2.0).numpy()
    assert type(out) is np.ndarray
    np.testing.assert_array_equal(out, [2.0, 4.0])
    assert x.sum().item() == 3.0


def test_to_cpu_on_a_cpu_tensor_is_the_same_tensor():
    x = leaf([1.0])
    assert x.to("cpu") is x and x.cpu() is x and x.device == "cpu"


def test_to_an_unknown_device_fails_clearly():
    with pytest.raises(ValueError, match=r"unknown device 'tpu'.*'cpu' or 'cuda'"):
        leaf([1.0]).to("tpu")


@pytest.mark.skipif(gpu_available(), reason="checks the message given when there is no GPU")
def test_to_cuda_without_a_gpu_says_why():
    with pytest.raises(RuntimeError, match=r"device 'cuda' requested but .*use device='cpu'"):
        leaf([1.0]).to("cuda")


def test_moving_between_devices_is_differentiable(device):
    x = leaf([1.0, 2.0])                                            # on the host
    y = x.to(device) * 3.0
    assert y.device == device
    y.sum().backward()
    assert x.grad is not None and type(x.grad) is np.ndarray        # the gradient came back to the host
    np.testing.assert_allclose(x.grad, [3.0, 3.0])


def test_dtype_rules():
    assert Tensor(1.5).dtype == np.float32                          # Python floats -> float32, as in PyTorch
    assert Tensor([1.0, 2.0]).dtype == np.float32
    assert Tensor(np.ones(2)).dtype == np.float64                   # float64 arrays stay float64
    assert Tensor(np.ones(2, np.float32)).dtype == np.float32
    assert Tensor([1, 2]).dtype.kind == "i"
    assert tr.tensor([1.0], dtype=np.float64).dtype == np.float64
    assert (Tensor(np.ones(2)) * 1.5).dtype == np.float64           # a Python scalar takes the tensor's dtype
    assert (Tensor(np.ones(2, np.float32)) + 1.5).dtype == np.float32
    assert (2.0 - Tensor(np.ones(2, np.float32))).dtype == np.float32


def test_repr_names_the_creator():
    y = leaf([1.0]) * 2.0
    assert "grad_fn=MulFunction" in repr(y)
    assert "requires_grad=True" in repr(leaf([1.0]))


# --------------------------------------------------------------------------- errors in backward
class BrokenFunction(Function):
    """Doubles its input; its backward fails, as a student's first attempt might."""

    def forward(self, x):
        return 2 * x

    def backward(self, dout):
        raise ValueError("boom: shapes do not match")


class HiddenNotesError(ValueError):
    """An exception without ``add_note`` (as on Python 3.10), to reach the engine's fallback."""

    def __getattribute__(self, name):
        if name == "add_note":
            raise AttributeError(name)
        return super().__getattribute__(name)


class BrokenWithoutNotesFunction(BrokenFunction):
    def backward(self, dout):
        raise HiddenNotesError("boom without notes")


def test_an_error_in_backward_names_the_op_and_the_line_that_created_it():
    x = leaf([1.0, 2.0])
    y, line = BrokenFunction()(x), line_here()                      # the op and its line
    where = f"{__file__}:{line}"
    if sys.version_info >= (3, 11):
        with pytest.raises(ValueError, match="boom") as info:
            y.sum().backward()
        notes = "\n".join(getattr(info.value, "__notes__", []))
        assert "BrokenFunction" in notes and where in notes, notes
    else:
        with pytest.raises(BackwardError, match="BrokenFunction") as info:
            y.sum().backward()
        assert where in str(info.value) and isinstance(info.value.__cause__, ValueError)


def test_without_add_note_the_error_is_wrapped_in_a_backward_error():
    x = leaf([1.0, 2.0])
    y, line = BrokenWithoutNotesFunction()(x), line_here()
    with pytest.raises(BackwardError) as info:
        y.sum().backward()
    message = str(info.value)
    assert "BrokenWithoutNotesFunction" in message and f"{__file__}:{line}" in message
    assert "HiddenNotesError: boom without notes" in message
    assert isinstance(info.value.__cause__, HiddenNotesError)


def test_ops_made_through_the_library_point_at_the_users_line():
    x = leaf([[[[1.0]]]])
    out, line = F.max_pool2d(x, 1), line_here()
    assert out.creator.created_at == f"{__file__}:{line}"


class WrongShapeFunction(Function):
    def forward(self, x):
        return x.sum()

    def backward(self, dout):
        return dout                                                 # forgot to broadcast back to x's shape


class TooManyGradsFunction(Function):
    def forward(self, x):
        return x * 1.0

    def backward(self, dout):
        return dout, dout


def test_a_backward_returning_the_wrong_shape_is_caught():
    y = WrongShapeFunction()(leaf(np.ones((2, 3))))
    with pytest.raises(RuntimeError, match=r"WrongShapeFunction.backward.*shape \(\) for an input of shape \(2, 3\)"):
        y.backward()


def test_a_backward_returning_too_many_gradients_is_caught():
    y = TooManyGradsFunction()(leaf([1.0]))
    with pytest.raises(RuntimeError, match=r"TooManyGradsFunction.backward returned 2 gradients for 1 inputs"):
        y.sum().backward()


def test_function_accepts_raw_arrays_as_constant_inputs(device):
    x = leaf([1.0, 2.0], device)
    y = MulFunction()(x, to_device(np.array([3.0, 4.0]), device))
    y.sum().backward()
    np.testing.assert_allclose(to_numpy(x.grad), [3.0, 4.0])


# --------------------------------------------------------------------------- what the graph keeps alive
@pytest.mark.usefixtures("tier")
def test_the_graph_frees_intermediate_maps_that_no_op_saved():
    """conv -> BN -> ReLU: ReLU's backward needs only its mask, so once the caller drops BN's output
    its array is freed, as in PyTorch, and backward still gives the same gradients."""
    import weakref

    rng = np.random.default_rng(7)
    x = Tensor(rng.standard_normal((2, 3, 6, 6)), requires_grad=True)
    w = Tensor(rng.standard_normal((4, 3, 3, 3)), requires_grad=True)
    gamma, beta = Tensor(rng.standard_normal(4)), Tensor(rng.standard_normal(4))   # without them y is x̂, saved

    def forward(drop):
        h = F.batch_norm(F.conv2d(x, w, padding=1), np.zeros(4), np.ones(4), gamma, beta, training=True)
        freed = weakref.ref(h.data)
        out = (F.relu(h) ** 2).sum()
        if drop:
            del h
        return out, freed

    kept, kept_ref = forward(drop=False)
    kept.backward()
    want = x.grad.copy(), w.grad.copy()
    x.grad = w.grad = None
    out, freed = forward(drop=True)
    assert freed() is None                              # nothing but the caller held BN's output
    out.backward()
    np.testing.assert_array_equal(x.grad, want[0])
    np.testing.assert_array_equal(w.grad, want[1])


def test_retain_grad_of_a_tensor_still_held_and_leaves_kept_by_the_graph():
    import weakref

    x = Tensor(np.arange(4.0), requires_grad=True)
    h = x * 2.0
    h.retain_grad()
    y = (h * h).sum()
    leaf = weakref.ref(x)
    del x                                               # the graph keeps the leaf its gradient goes to
    x = leaf()
    assert x is not None
    y.backward()
    np.testing.assert_array_equal(h.grad, 2 * h.data)
    np.testing.assert_array_equal(x.grad, 8 * np.arange(4.0))


def test_a_tensor_used_by_an_op_and_by_that_ops_consumer_gets_both_gradients():
    """y = A + 3A with A = 2a: dy/da = 8. The graph walk must finish 3A's backward before A's, however
    the consumers are ordered (a DenseNet's cat([x, f(x)]) has this shape; F(x) + x does not)."""
    for first in (True, False):
        a = Tensor(np.ones(3), requires_grad=True)
        A = a * 2.0
        B = A * 3.0
        ((A + B) if first else (B + A)).sum().backward()
        np.testing.assert_array_equal(a.grad, np.full(3, 8.0))


def test_dense_concatenation_passes_gradcheck():
    from tinyresnet.gradcheck import assert_gradcheck

    w = np.random.default_rng(3).standard_normal((2, 3, 1, 1))
    assert_gradcheck(lambda x: tr.cat([x, F.conv2d(x, Tensor(w))], dim=1) * 1.5,
                     [np.random.default_rng(4).standard_normal((2, 3, 4, 4))])
