"""PyTorch users at home: the names a PyTorch user guesses, with PyTorch's signatures, values, gradients and errors.

Tensor methods (argmax, max/min, casts, size/numel/dim, squeeze/unsqueeze, sum(dim=...)), the top-level
functions (zeros, randn, arange, from_numpy, stack, argmax, max, save/load, no_grad as a decorator,
inference_mode), the losses (CrossEntropyLoss with label smoothing, MSELoss, one_hot) and
nn.utils.clip_grad_norm_. Each differentiable op: a float64 finite-difference gradient check and a forward
check against NumPy; where torch is installed, values and gradients are compared with it too.
"""

import pickle

import numpy as np
import pytest

import tinyresnet as tr
from tinyresnet import Tensor, nn
from tinyresnet import functional as F
from tinyresnet.backend import to_numpy
from tinyresnet.gradcheck import assert_gradcheck
from tinyresnet.ops.basic import CastFunction

TORCH_REASON = "torch is the optional oracle for the PyTorch-compatible API (pip install torch)"


def normal(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def distinct(*shape, seed=0):
    """Values 0.1 apart, shuffled: no ties, and no finite-difference step can change which one is largest."""
    n = int(np.prod(shape))
    return (np.random.default_rng(seed).permutation(n) * 0.1 - 0.05 * n).reshape(shape)


def leaf(array):
    return Tensor(np.array(array, dtype=np.float64), requires_grad=True)


def grad_of(fn, array):
    """d(Σ fn(x) ⊙ w)/dx for a fixed random w, in tinyresnet."""
    x = leaf(array)
    out = fn(x)
    w = normal(*out.shape, seed=7)
    (out * Tensor(w)).sum().backward()
    return out, x.grad, w


def torch_grad_of(torch, fn, array, w):
    x = torch.tensor(np.array(array, dtype=np.float64), requires_grad=True)
    out = fn(x)
    (out * torch.tensor(w)).sum().backward()
    return out.detach().numpy(), x.grad.numpy()


# --------------------------------------------------------------------------- the names exist
TENSOR_METHODS = ["argmax", "argmin", "max", "min", "float", "double", "long", "int", "size", "numel", "dim",
                  "unsqueeze", "squeeze", "item", "sum", "mean", "to"]
TOP_LEVEL = ["zeros", "ones", "empty", "full", "zeros_like", "ones_like", "randn", "rand", "arange", "from_numpy",
             "stack", "cat", "argmax", "argmin", "max", "min", "save", "load", "no_grad", "inference_mode",
             "manual_seed", "tensor", "float32", "float64", "int64", "long", "double"]


def test_every_name_a_pytorch_user_guesses_exists():
    for name in TENSOR_METHODS:
        assert hasattr(Tensor, name), f"Tensor.{name}"
    for name in TOP_LEVEL:
        assert hasattr(tr, name) and name in tr.__all__, f"tinyresnet.{name}"
    for name in ["CrossEntropyLoss", "MSELoss", "utils"]:
        assert hasattr(nn, name) and name in nn.__all__, f"nn.{name}"
    for name in ["clip_grad_norm_", "clip_grad_value_"]:
        assert hasattr(nn.utils, name), f"nn.utils.{name}"
    for name in ["cross_entropy", "one_hot", "mse_loss"]:
        assert hasattr(F, name), f"functional.{name}"


# --------------------------------------------------------------------------- size, numel, dim
def test_size_is_the_element_count_and_called_gives_the_shape():
    t = tr.zeros(2, 3)
    assert t.size == 6 and int(t.size) == 6 and t.size + 1 == 7 and list(range(t.size)) == list(range(6))
    assert t.size() == (2, 3) and t.size() == t.shape
    assert t.size(0) == 2 and t.size(1) == 3 and t.size(-1) == 3 and t.size(-2) == 2
    assert t.numel() == 6 and type(t.numel()) is int
    assert t.dim() == 2 and tr.tensor(1.0).dim() == 0
    assert tr.tensor(1.0).size() == () and tr.tensor(1.0).size == 1
    assert type(pickle.loads(pickle.dumps(t.size))) is int          # a copy is the plain count
    with pytest.raises(IndexError, match=r"dim 2 is out of range .* \[-2, 1\]"):
        t.size(2)
    with pytest.raises(TypeError, match="dim must be an integer"):
        t.size(1.0)


def test_size_matches_torch():
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    for shape in [(2, 3), (4,), (1, 2, 1, 5), ()]:
        ours, theirs = tr.zeros(shape), torch.zeros(shape)
        assert ours.size() == tuple(theirs.size()) and ours.numel() == theirs.numel() and ours.dim() == theirs.dim()
        for d in range(-len(shape), len(shape)):
            assert ours.size(d) == theirs.size(d)


# --------------------------------------------------------------------------- max, min, argmax
def test_max_and_min_without_dim_are_0d_and_match_numpy():
    x = distinct(3, 4)
    for name, ref in [("max", np.max), ("min", np.min)]:
        out = getattr(leaf(x), name)()
        assert out.shape == () and out.item() == ref(x)


def test_max_without_dim_shares_the_gradient_between_ties():
    x = leaf([[1.0, 3.0, 3.0], [2.0, 3.0, 0.0]])
    x.max().backward()
    np.testing.assert_allclose(x.grad, [[0, 1 / 3, 1 / 3], [0, 1 / 3, 0]])
    x.grad = None
    x.min().backward()
    np.testing.assert_allclose(x.grad, [[0, 0, 0], [0, 0, 1]])


def test_max_with_dim_returns_values_and_first_indices():
    x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]])
    values, indices = leaf(x).max(1)
    np.testing.assert_array_equal(values.data, [3.0, 2.0])
    np.testing.assert_array_equal(indices.data, [1, 0])                 # the first of tied maxima
    assert indices.dtype == np.int64 and not indices.requires_grad and values.requires_grad
    result = leaf(x).min(dim=0, keepdim=True)
    assert result.values.shape == (1, 3) and result.indices.shape == (1, 3)
    np.testing.assert_array_equal(result.values.data, x.min(0, keepdims=True))
    np.testing.assert_array_equal(result.indices.data, x.argmin(0)[None])


def test_max_with_dim_sends_the_gradient_to_the_first_maximum():
    x = leaf([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]])
    x.max(1).values.sum().backward()
    np.testing.assert_array_equal(x.grad, [[0, 1, 0], [1, 0, 0]])


@pytest.mark.parametrize("name", ["max", "min"])
@pytest.mark.parametrize("dim, keepdim", [(None, False), (0, False), (1, True), (-1, False), (2, True)])
def test_max_min_gradients_match_finite_differences(name, dim, keepdim):
    def fn(x):
        out = getattr(x, name)() if dim is None else getattr(x, name)(dim, keepdim)
        return out if dim is None else out.values
    assert_gradcheck(fn, [leaf(distinct(2, 3, 4))], names=["x"])


@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 4)])
def test_argmax_matches_numpy(shape):
    x = distinct(*shape)
    t = tr.tensor(x)
    assert t.argmax().item() == np.argmax(x) and t.argmax().shape == ()
    assert t.argmax(keepdim=True).shape == (1,) * len(shape)
    for d in range(-len(shape), len(shape)):
        np.testing.assert_array_equal(t.argmax(d).data, np.argmax(x, axis=d))
        np.testing.assert_array_equal(t.argmax(d, keepdim=True).data, np.expand_dims(np.argmax(x, axis=d), d))
        np.testing.assert_array_equal(tr.argmin(t, d).data, np.argmin(x, axis=d))
        assert t.argmax(d).dtype == np.int64


def test_max_min_argmax_match_torch_with_ties():
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    x = np.round(normal(3, 4, 5, seed=3))                               # integers: many ties
    w = normal(1, seed=1)
    for name in ["max", "min"]:
        out, g, w = grad_of(lambda t, name=name: getattr(t, name)(), x)
        t_out, t_g = torch_grad_of(torch, lambda t, name=name: getattr(t, name)(), x, w)
        np.testing.assert_allclose(out.data, t_out)
        np.testing.assert_allclose(g, t_g)
        for dim in [0, 1, -1]:
            for keepdim in [False, True]:
                out, g, w = grad_of(lambda t, n=name, d=dim, k=keepdim: getattr(t, n)(d, k).values, x)
                t_out, t_g = torch_grad_of(torch, lambda t, n=name, d=dim, k=keepdim: getattr(t, n)(d, k).values,
                                           x, w)
                np.testing.assert_allclose(out.data, t_out)
                np.testing.assert_allclose(g, t_g)
                ours, theirs = getattr(tr, name)(tr.tensor(x), dim, keepdim), getattr(torch, name)(
                    torch.tensor(x), dim, keepdim)
                np.testing.assert_array_equal(ours.indices.data, theirs.indices.numpy())
    for dim in [None, 0, 2]:
        for keepdim in [False, True]:
            np.testing.assert_array_equal(tr.argmax(tr.tensor(x), dim, keepdim).data,
                                          torch.argmax(torch.tensor(x), dim, keepdim).numpy())


def test_classic_torch_max_for_predictions():
    logits = tr.tensor(np.array([[0.1, 2.0, -1.0], [3.0, 0.0, 0.5]]))
    _, predicted = tr.max(logits.data, 1)                # an ndarray (logits.data) is taken too
    np.testing.assert_array_equal(predicted.data, [1, 0])


def test_max_min_argmax_errors_where_torch_errors():
    empty = tr.zeros(2, 0)
    with pytest.raises(ValueError, match=r"max\(\) of an empty tensor"):
        empty.max()
    with pytest.raises(ValueError, match=r"argmax\(\) of an empty tensor"):
        empty.argmax()
    with pytest.raises(ValueError, match=r"min\(dim=1\) of a tensor of shape \(2, 0\)"):
        empty.min(1)
    assert empty.max(0).values.shape == (0,)                 # reducing the non-empty dim is fine
    with pytest.raises(IndexError, match=r"dim 2 is out of range"):
        tr.zeros(2, 3).max(2)
    with pytest.raises(IndexError, match=r"dim -3 is out of range"):
        tr.zeros(2, 3).argmax(-3)
    with pytest.raises(TypeError, match="elementwise"):
        tr.zeros(2).max(tr.zeros(2))


def test_max_of_a_0d_tensor_with_dim_0():
    x = leaf(2.5)
    values, indices = x.max(0)
    assert values.shape == () and values.item() == 2.5 and indices.item() == 0
    values.backward()
    assert x.grad == 1.0


# --------------------------------------------------------------------------- casts
def test_casts_give_the_dtype_and_float_casts_stay_in_the_graph():
    x = leaf([[1.5, -1.7], [0.25, 2.0]])
    y = x.float()
    assert y.dtype == np.float32 and y.requires_grad and y.creator is not None
    w = normal(2, 2, seed=2)
    (y.double() * Tensor(w)).sum().backward()
    assert x.grad.dtype == np.float64
    np.testing.assert_allclose(x.grad, w.astype(np.float32), rtol=1e-7)
    assert x.double() is x                                     # already float64: no copy, as in torch
    n = x.long()
    assert n.dtype == np.int64 and not n.requires_grad
    np.testing.assert_array_equal(n.data, [[1, -1], [0, 2]])  # toward zero
    assert x.int().dtype == np.int32
    assert tr.tensor([1, 2]).float().dtype == np.float32 and not tr.tensor([1, 2]).float().requires_grad
    assert x.to(np.float32).dtype == np.float32 and x.to("cpu", "float32").dtype == np.float32
    assert x.to("cpu") is x and x.to(dtype=np.float64) is x


def test_cast_gradient_matches_finite_differences():
    assert_gradcheck(lambda x: CastFunction(np.float64)(x) * x, [leaf(normal(3, 2))], names=["x"])


def test_casts_match_torch():
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    x = np.array([[1.5, -1.7], [0.25, -2.5]])
    for name in ["float", "double", "long", "int"]:
        ours, theirs = getattr(tr.tensor(x, dtype=np.float64), name)(), getattr(torch.tensor(x), name)()
        assert str(ours.dtype) == str(theirs.dtype).replace("torch.", "")
        np.testing.assert_array_equal(ours.data, theirs.numpy())
    out, g, w = grad_of(lambda t: t.float() * 3, x)
    t_out, t_g = torch_grad_of(torch, lambda t: t.float() * 3, x, w.astype(np.float32))
    np.testing.assert_allclose(out.data, t_out)
    np.testing.assert_allclose(g, t_g, rtol=1e-6)


# --------------------------------------------------------------------------- squeeze, unsqueeze, sum(dim=)
def test_squeeze_and_unsqueeze_shapes_match_numpy():
    t = tr.zeros(2, 1, 3, 1)
    assert t.squeeze().shape == (2, 3)
    assert t.squeeze(1).shape == (2, 3, 1) and t.squeeze(-1).shape == (2, 1, 3)
    assert t.squeeze(0).shape == (2, 1, 3, 1)                    # not size 1: kept, as torch (no error)
    assert t.squeeze((1, 3)).shape == (2, 3)
    for d in range(-5, 5):
        assert t.unsqueeze(d).shape == np.expand_dims(np.zeros((2, 1, 3, 1)), d).shape
    assert tr.tensor(1.0).unsqueeze(0).shape == (1,) and tr.tensor(1.0).squeeze().shape == ()
    with pytest.raises(IndexError, match=r"unsqueeze: dim 5 is out of range .* \[-5, 4\]"):
        t.unsqueeze(5)
    with pytest.raises(IndexError, match="squeeze: dim 4"):
        t.squeeze(4)


def test_squeeze_unsqueeze_gradients_match_finite_differences():
    assert_gradcheck(lambda x: x.unsqueeze(1).squeeze(-1) * x.unsqueeze(1), [leaf(normal(3, 1))], names=["x"])


def test_squeeze_unsqueeze_match_torch():
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    x = np.zeros((2, 1, 3, 1))
    for d in range(-4, 4):
        assert tr.tensor(x).squeeze(d).shape == tuple(torch.tensor(x).squeeze(d).shape)
    for d in range(-5, 5):
        assert tr.tensor(x).unsqueeze(d).shape == tuple(torch.tensor(x).unsqueeze(d).shape)


def test_sum_and_mean_take_torchs_dim_and_keepdim():
    x = normal(2, 3, 4)
    t = tr.tensor(x)
    np.testing.assert_allclose(t.sum(dim=1).data, x.sum(1))
    np.testing.assert_allclose(t.sum(dim=(0, 2), keepdim=True).data, x.sum((0, 2), keepdims=True))
    np.testing.assert_allclose(t.mean(dim=[0, 1]).data, x.mean((0, 1)))
    np.testing.assert_allclose(t.mean(1, keepdims=True).data, x.mean(1, keepdims=True))   # NumPy's names still
    with pytest.raises(TypeError, match="not both"):
        t.sum(0, dim=1)


# --------------------------------------------------------------------------- making tensors
def test_creation_functions_default_to_float32_and_take_dtype_device_requires_grad():
    for make in [tr.zeros, tr.ones, tr.empty, tr.randn, tr.rand]:
        t = make(2, 3)
        assert t.shape == (2, 3) and t.dtype == np.float32 and not t.requires_grad and t.device == "cpu"
        assert make((2, 3)).shape == (2, 3) and make([4]).shape == (4,)
        t = make(2, dtype=tr.float64, device="cpu", requires_grad=True)
        assert t.dtype == np.float64 and t.requires_grad and t.is_leaf
    np.testing.assert_array_equal(tr.zeros(2).data, [0, 0])
    np.testing.assert_array_equal(tr.ones(2, dtype=tr.long).data, [1, 1])
    assert tr.ones(2, dtype=tr.long).dtype == np.int64
    assert tr.full((2, 2), 7).dtype == np.int64 and tr.full((2,), 0.5).dtype == np.float32
    assert tr.full((2,), True).dtype == np.bool_
    like = tr.zeros_like(tr.tensor([[1, 2]]))
    assert like.dtype == np.int64 and like.shape == (1, 2)
    assert tr.ones_like(tr.zeros(3), dtype=np.float64).dtype == np.float64


def test_random_functions_follow_manual_seed():
    tr.manual_seed(5)
    a, u = tr.randn(3, 4), tr.rand(10)
    tr.manual_seed(5)
    np.testing.assert_array_equal(a.data, tr.randn(3, 4).data)
    np.testing.assert_array_equal(u.data, tr.rand(10).data)
    assert 0 <= u.data.min() and u.data.max() < 1
    rng = np.random.default_rng(1)
    np.testing.assert_array_equal(tr.randn(3, generator=rng, dtype=tr.float64).data,
                                  np.random.default_rng(1).standard_normal(3))
    tr.manual_seed(0)


def test_creation_errors_name_the_value():
    with pytest.raises(ValueError, match=r"sizes must be >= 0, got \(2, -1\)"):
        tr.zeros(2, -1)
    with pytest.raises(TypeError, match="whole numbers"):
        tr.ones(2.5)
    with pytest.raises(TypeError, match="only floating-point tensors can require gradients"):
        tr.zeros(2, dtype=tr.int64, requires_grad=True)
    with pytest.raises(TypeError, match="randn draws floating-point"):
        tr.randn(2, dtype=tr.int64)
    with pytest.raises(TypeError, match=r"expects a numpy.ndarray, got list"):
        tr.from_numpy([1, 2])
    with pytest.raises(ValueError, match="step must not be 0"):
        tr.arange(0, 5, 0)
    with pytest.raises(ValueError, match="the step must be positive"):
        tr.arange(0, 5, -1)


def test_from_numpy_shares_memory_and_keeps_the_dtype():
    a = np.arange(6.0).reshape(2, 3)
    t = tr.from_numpy(a)
    assert t.dtype == np.float64 and t.data is a
    a[0, 0] = 10.0
    assert t.data[0, 0] == 10.0


@pytest.mark.parametrize("args", [(5,), (2, 7), (1, 10, 3), (0, 1, 0.25), (1.5, 4), (5, 0, -2), (0, 1, 0.1),
                                  (-1.0, 1.0, 0.3)])
def test_arange_matches_numpy(args):
    expected = np.arange(*args)
    t = tr.arange(*args)
    assert t.dtype == (np.int64 if expected.dtype.kind == "i" else np.float32)
    np.testing.assert_allclose(t.data, expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("args", [(5,), (2, 7), (1, 10, 3), (0, 1, 0.25), (1.5, 4), (5, 0, -2), (0, 1, 0.1),
                                  (-1.0, 1.0, 0.3), (0, 0)])
def test_arange_matches_torch(args):
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    ours, theirs = tr.arange(*args), torch.arange(*args)
    assert str(ours.dtype) == str(theirs.dtype).replace("torch.", "")
    np.testing.assert_allclose(ours.data, theirs.numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(tr.arange(*args, dtype=tr.float64).data.shape,
                                  torch.arange(*args, dtype=torch.float64).numpy().shape)


# --------------------------------------------------------------------------- stack
@pytest.mark.parametrize("dim", [0, 1, 2, -1, -3])
def test_stack_matches_numpy_and_its_gradient_finite_differences(dim):
    xs = [normal(2, 3, seed=k) for k in range(3)]
    np.testing.assert_array_equal(tr.stack([tr.tensor(x) for x in xs], dim).data, np.stack(xs, dim))
    assert_gradcheck(lambda a, b, c: tr.stack([a, b, c], dim=dim), [leaf(x) for x in xs], names=["a", "b", "c"])


def test_stack_matches_torch():
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    xs = [normal(2, 3, seed=k) for k in range(3)]
    ours = [leaf(x) for x in xs]
    theirs = [torch.tensor(x, requires_grad=True) for x in xs]
    w = normal(2, 3, 3, seed=9)
    (tr.stack(ours, 2) * Tensor(w)).sum().backward()
    (torch.stack(theirs, 2) * torch.tensor(w)).sum().backward()
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.grad, b.grad.numpy())


def test_stack_errors():
    with pytest.raises(ValueError, match=r"one shape, got \(2,\) at entry 0 and \(3,\) at entry 1"):
        tr.stack([tr.zeros(2), tr.zeros(3)])
    with pytest.raises(ValueError, match="non-empty list"):
        tr.stack([])
    with pytest.raises(IndexError, match="stack: dim 2 is out of range"):
        tr.stack([tr.zeros(2), tr.zeros(2)], dim=2)


# --------------------------------------------------------------------------- save and load
def test_save_and_load_a_state_dict_and_a_model(tmp_path):
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    path = tmp_path / "model.pt"
    tr.save(model.state_dict(), path)
    assert path.exists()
    loaded = tr.load(path)
    assert isinstance(loaded, dict) and all(isinstance(v, np.ndarray) for v in loaded.values())
    assert loaded.keys() == model.state_dict().keys()
    other = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    other.load_state_dict(tr.load(path))
    x = tr.randn(5, 3)
    np.testing.assert_array_equal(other(x).data, model(x).data)
    tr.save(model, tmp_path / "whole.npz")                              # a model: its state_dict
    assert tr.load(tmp_path / "whole.npz").keys() == loaded.keys()
    tr.save({"w": tr.ones(2), "step": 3}, tmp_path / "mixed.npz")
    mixed = tr.load(tmp_path / "mixed.npz", map_location="cpu")
    np.testing.assert_array_equal(mixed["w"], [1, 1])
    assert int(mixed["step"]) == 3


def test_save_refuses_what_it_cannot_write(tmp_path):
    with pytest.raises(TypeError, match=r"entry 'nested' is a dict"):
        tr.save({"nested": {"a": np.ones(2)}}, tmp_path / "x.npz")
    with pytest.raises(TypeError, match="state_dict"):
        tr.save([np.ones(2)], tmp_path / "x.npz")
    assert not (tmp_path / "x.npz").exists()
    with pytest.raises(FileNotFoundError):
        tr.load(tmp_path / "missing.npz")


# --------------------------------------------------------------------------- no_grad, inference_mode
def test_no_grad_as_a_block_and_as_a_decorator_with_or_without_parentheses():
    x = tr.ones(2, requires_grad=True)

    @tr.no_grad()
    def called():
        return x * 2, tr.is_grad_enabled()

    @tr.no_grad
    def bare(y):
        """Keeps its docstring."""
        return y * 2

    with tr.no_grad():
        assert not (x * 2).requires_grad
    assert tr.is_grad_enabled()
    out, enabled = called()
    assert not out.requires_grad and not enabled and tr.is_grad_enabled()
    assert not bare(x).requires_grad and bare.__doc__ == "Keeps its docstring." and tr.is_grad_enabled()
    assert (x * 2).requires_grad


def test_no_grad_nests_recurses_and_puts_back_after_an_exception():
    @tr.no_grad()
    def countdown(n):
        assert not tr.is_grad_enabled()
        return 0 if n == 0 else countdown(n - 1) + 1

    assert countdown(3) == 3 and tr.is_grad_enabled()
    with pytest.raises(KeyError):
        with tr.no_grad():
            with tr.no_grad():
                raise KeyError("x")
    assert tr.is_grad_enabled()


def test_no_grad_refuses_generators_and_arguments():
    def generator():
        yield 1

    with pytest.raises(TypeError, match="generator function"):
        tr.no_grad()(generator)
    with pytest.raises(TypeError, match="takes no argument"):
        tr.no_grad(3)


def test_inference_mode_is_no_grad():
    x = tr.ones(2, requires_grad=True)
    with tr.inference_mode():
        assert not (x * 2).requires_grad
    with tr.inference_mode(False):
        assert (x * 2).requires_grad

    @tr.inference_mode
    def f():
        return x * 2

    @tr.inference_mode()
    def g():
        return x * 2

    assert not f().requires_grad and not g().requires_grad and tr.is_grad_enabled()
    with pytest.raises(TypeError, match="True or False"):
        tr.inference_mode("yes")


def test_no_grad_matches_torch_forms():
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    for lib in (torch, tr):
        x = lib.ones(2, requires_grad=True)
        with lib.no_grad():
            a = x * 2
        b = lib.no_grad()(lambda x=x: x * 2)()
        c = lib.no_grad(lambda x=x: x * 2)()
        with lib.inference_mode():
            d = x * 2
        assert not any(t.requires_grad for t in (a, b, c, d))


# --------------------------------------------------------------------------- cross-entropy with label smoothing
def smoothed_cross_entropy(logits, targets, eps):
    """NumPy reference: (1 − ε)·(−log p[t]) + ε · mean over classes of −log p, one loss per row."""
    shifted = logits - logits.max(1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
    return -(1 - eps) * log_p[np.arange(len(targets)), targets] - eps * log_p.mean(1)


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.5, 1.0])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_label_smoothing_matches_numpy_and_finite_differences(eps, reduction):
    z, t = normal(5, 4, seed=1), np.array([0, 3, 1, 1, 2])
    losses = smoothed_cross_entropy(z, t, eps)
    expected = {"mean": losses.mean(), "sum": losses.sum(), "none": losses}[reduction]
    np.testing.assert_allclose(F.cross_entropy(tr.tensor(z), t, reduction, eps).data, expected, rtol=1e-12)
    np.testing.assert_allclose(nn.CrossEntropyLoss(reduction, eps)(tr.tensor(z), tr.tensor(t)).data, expected,
                               rtol=1e-12)
    assert_gradcheck(lambda x: F.cross_entropy(x, t, reduction=reduction, label_smoothing=eps), [leaf(z)],
                     names=["logits"])


@pytest.mark.parametrize("eps", [0.0, 0.2])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_loss_matches_torch(eps, reduction):
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    z, t = normal(6, 5, seed=2), np.array([4, 0, 1, 1, 3, 2])
    out, g, w = grad_of(lambda x: nn.CrossEntropyLoss(reduction=reduction, label_smoothing=eps)(x, tr.tensor(t)), z)
    loss = torch.nn.CrossEntropyLoss(reduction=reduction, label_smoothing=eps)
    t_out, t_g = torch_grad_of(torch, lambda x: loss(x, torch.tensor(t)), z, w)
    np.testing.assert_allclose(out.data, t_out, rtol=1e-12)
    np.testing.assert_allclose(g, t_g, rtol=1e-10, atol=1e-15)


def test_cross_entropy_errors():
    z, t = tr.zeros(2, 3), np.array([0, 1])
    for bad in [1.5, -0.1]:
        with pytest.raises(ValueError, match=f"label_smoothing must be between 0.0 and 1.0, got {bad}"):
            F.cross_entropy(z, t, label_smoothing=bad)
        with pytest.raises(ValueError, match="label_smoothing must be between"):
            nn.CrossEntropyLoss(label_smoothing=bad)
    with pytest.raises(ValueError, match="reduction must be"):
        nn.CrossEntropyLoss(reduction="average")
    assert repr(nn.CrossEntropyLoss(label_smoothing=0.1)) == "CrossEntropyLoss(label_smoothing=0.1)"


# --------------------------------------------------------------------------- one_hot
def test_one_hot_is_int64_and_matches_numpy():
    labels = np.array([[0, 2], [1, 1]])
    out = F.one_hot(tr.tensor(labels), 4)
    assert out.dtype == np.int64 and out.shape == (2, 2, 4) and not out.requires_grad
    np.testing.assert_array_equal(out.data, np.eye(4, dtype=np.int64)[labels])
    assert F.one_hot(tr.tensor([0, 3])).shape == (2, 4)                  # -1: largest index + 1
    assert F.one_hot(tr.tensor(np.zeros(0, dtype=np.int64)), 3).shape == (0, 3)


def test_one_hot_matches_torch():
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    labels = np.array([[0, 2, 5], [1, 1, 3]])
    for k in [-1, 6, 9]:
        theirs = torch.nn.functional.one_hot(torch.tensor(labels), k)
        ours = F.one_hot(tr.tensor(labels), k)
        assert str(ours.dtype) == str(theirs.dtype).replace("torch.", "")
        np.testing.assert_array_equal(ours.data, theirs.numpy())


def test_one_hot_errors_where_torch_errors():
    with pytest.raises(ValueError, match="class index -1 is negative"):
        F.one_hot(tr.tensor([-1, 0]))
    with pytest.raises(ValueError, match="class index 3 does not fit num_classes=3"):
        F.one_hot(tr.tensor([3]), 3)
    with pytest.raises(TypeError, match=r"integer class indices, got dtype float32.*\.long\(\)"):
        F.one_hot(tr.tensor([1.0]))
    with pytest.raises(ValueError, match="cannot infer the number of classes from an empty tensor"):
        F.one_hot(tr.tensor(np.zeros(0, dtype=np.int64)))


# --------------------------------------------------------------------------- mse_loss
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss_matches_numpy_and_finite_differences(reduction):
    x, y = normal(3, 4, seed=1), normal(3, 4, seed=2)
    squared = (x - y) ** 2
    expected = {"mean": squared.mean(), "sum": squared.sum(), "none": squared}[reduction]
    np.testing.assert_allclose(F.mse_loss(tr.tensor(x), tr.tensor(y), reduction).data, expected, rtol=1e-12)
    np.testing.assert_allclose(nn.MSELoss(reduction)(tr.tensor(x), tr.tensor(y)).data, expected, rtol=1e-12)
    assert_gradcheck(lambda a, b: F.mse_loss(a, b, reduction=reduction), [leaf(x), leaf(y)], names=["input", "target"])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss_matches_torch(reduction):
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    x, y = normal(3, 4, seed=1), normal(3, 4, seed=2)
    out, g, w = grad_of(lambda a: nn.MSELoss(reduction=reduction)(a, tr.tensor(y)), x)
    t_out, t_g = torch_grad_of(torch, lambda a: torch.nn.MSELoss(reduction=reduction)(a, torch.tensor(y)), x, w)
    np.testing.assert_allclose(out.data, t_out, rtol=1e-12)
    np.testing.assert_allclose(g, t_g, rtol=1e-12)


def test_mse_loss_warns_on_broadcasting_and_rejects_bad_reductions():
    with pytest.warns(UserWarning, match=r"target's shape \(3, 1\) differs from the input's \(3, 4\)"):
        F.mse_loss(tr.zeros(3, 4), tr.zeros(3, 1))
    with pytest.raises(ValueError, match="reduction must be"):
        nn.MSELoss(reduction="avg")
    with pytest.raises(ValueError, match="reduction must be"):
        F.mse_loss(tr.zeros(2), tr.zeros(2), reduction="avg")


# --------------------------------------------------------------------------- clip_grad_norm_
def with_grads(grads):
    params = [Tensor(np.zeros_like(g), requires_grad=True) for g in grads]
    for p, g in zip(params, grads):
        p.grad = g.copy()
    return params


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3, float("inf")])
def test_clip_grad_norm_clips_and_returns_the_total_norm(norm_type):
    grads = [normal(3, 2, seed=1) * 5, normal(4, seed=2) * 5]
    flat = np.concatenate([g.ravel() for g in grads])
    total = np.abs(flat).max() if np.isinf(norm_type) else (np.abs(flat) ** norm_type).sum() ** (1 / norm_type)
    params = with_grads(grads)
    returned = nn.utils.clip_grad_norm_(params, 1.0, norm_type)
    assert isinstance(returned, Tensor) and returned.shape == ()
    np.testing.assert_allclose(returned.item(), total, rtol=1e-12)
    for p, g in zip(params, grads):
        np.testing.assert_allclose(p.grad, g * 1.0 / (total + 1e-6), rtol=1e-12)
    small = with_grads([g * 1e-3 for g in grads])
    nn.utils.clip_grad_norm_(small, 1e6, norm_type)                      # below the limit: untouched
    for p, g in zip(small, grads):
        np.testing.assert_array_equal(p.grad, g * 1e-3)


@pytest.mark.parametrize("norm_type", [2.0, 1.0, float("inf")])
def test_clip_grad_norm_matches_torch(norm_type):
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    grads = [normal(3, 2, seed=1).astype(np.float32), normal(4, seed=2).astype(np.float32)]
    ours = with_grads(grads)
    theirs = [torch.nn.Parameter(torch.zeros(g.shape)) for g in grads]
    for p, g in zip(theirs, grads):
        p.grad = torch.tensor(g)
    ours_total = nn.utils.clip_grad_norm_(ours, 0.5, norm_type=norm_type)
    theirs_total = torch.nn.utils.clip_grad_norm_(theirs, 0.5, norm_type=norm_type)
    np.testing.assert_allclose(ours_total.item(), theirs_total.item(), rtol=1e-6)
    assert ours_total.dtype == np.float32
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.grad, b.grad.numpy(), rtol=1e-5)


def test_clip_grad_norm_edge_cases():
    shared = np.full(3, 4.0)                               # two leaves holding one gradient array
    a, b = Tensor(np.zeros(3), requires_grad=True), Tensor(np.zeros(3), requires_grad=True)
    a.grad = b.grad = shared
    nn.utils.clip_grad_norm_([a, b], 1.0)
    np.testing.assert_allclose(a.grad, b.grad)             # scaled once each, not twice
    np.testing.assert_array_equal(shared, 4.0)
    single = with_grads([np.array([3.0, 4.0])])[0]
    assert nn.utils.clip_grad_norm_(single, 10.0).item() == 5.0          # one tensor, not a list
    assert nn.utils.clip_grad_norm_([Tensor(np.zeros(2), requires_grad=True)], 1.0).item() == 0.0
    bad = with_grads([np.array([np.inf, 1.0])])
    with pytest.raises(RuntimeError, match="total 2.0-norm of the gradients is inf"):
        nn.utils.clip_grad_norm_(bad, 1.0, error_if_nonfinite=True)
    with pytest.raises(ValueError, match="norm_type must be > 0"):
        nn.utils.clip_grad_norm_(bad, 1.0, norm_type=0)
    clipped = with_grads([np.array([-3.0, 0.5, 2.0])])
    nn.utils.clip_grad_value_(clipped, 1.0)
    np.testing.assert_array_equal(clipped[0].grad, [-1.0, 0.5, 1.0])


# --------------------------------------------------------------------------- a PyTorch-style training loop
def test_a_pytorch_style_training_loop_runs_with_these_names():
    tr.manual_seed(0)
    model = tr.models.resnet20(num_classes=10, in_channels=1)
    criterion = nn.CrossEntropyLoss(label_smoothing=0.1)
    optimizer = tr.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    images = tr.randn(8, 1, 8, 8)
    labels = tr.from_numpy(np.random.default_rng(0).integers(0, 10, size=8))
    losses = []
    model.train()
    for _ in range(2):
        optimizer.zero_grad()
        loss = criterion(model(images), labels)
        loss.backward()
        total = nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
        optimizer.step()
        losses.append(loss.item())
        assert np.isfinite(total.item()) and total.item() > 0
    assert all(np.isfinite(losses))
    model.eval()
    with tr.no_grad():
        logits = model(images)
        accuracy = (logits.argmax(dim=1).numpy() == labels.numpy()).mean()
    assert not logits.requires_grad and logits.size(1) == 10 and 0.0 <= accuracy <= 1.0
    _, predicted = tr.max(logits, 1)
    np.testing.assert_array_equal(predicted.numpy(), logits.argmax(1).numpy())
    assert to_numpy(F.one_hot(predicted, 10).data).sum() == 8


# ------------------------------------------------------------------ comparisons, clone, randint (review)
def test_comparisons_are_elementwise_bool_tensors_as_in_pytorch():
    a, b = tr.tensor([1.0, 2.0, 3.0]), tr.tensor([1.0, 0.0, 3.0])
    np.testing.assert_array_equal((a == b).numpy(), [True, False, True])
    np.testing.assert_array_equal((a != b).numpy(), [False, True, False])
    np.testing.assert_array_equal((a > 1).numpy(), [False, True, True])
    np.testing.assert_array_equal((a <= b).numpy(), [True, False, True])
    np.testing.assert_array_equal(a.ge(2).numpy(), [False, True, True])
    np.testing.assert_array_equal((1 < a).numpy(), [False, True, True])             # reflected
    assert (a == b).dtype == np.bool_ and not (a == b).requires_grad
    assert (tr.arange(4) == 1).sum().item() == 1                          # the accuracy line
    assert (a > 1).float().mean().item() == pytest.approx(2 / 3)
    assert (a == None) is False and (a != None) is True                           # noqa: E711
    assert {a: "kept"}[a] == "kept" and a in {a}                                  # hashed by identity
    with pytest.raises(ValueError, match=r"cannot compare tensors of shapes \(3,\) and \(2,\)"):
        a == tr.tensor([1.0, 2.0])                                        # noqa: B015


def test_clone_copies_and_stays_in_the_graph():
    x = tr.tensor([1.0, 2.0], requires_grad=True)
    y = x.clone()
    assert y.data is not x.data and np.shares_memory(y.data, x.data) is False
    (y * 3).sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, 3.0])


def test_randint_as_torch():
    tr.manual_seed(0)
    r = tr.randint(10, (4, 5))
    assert r.shape == (4, 5) and r.dtype == np.int64 and 0 <= r.numpy().min() and r.numpy().max() < 10
    r = tr.randint(2, 5, (100,))
    assert set(np.unique(r.numpy())) <= {2, 3, 4}
    with pytest.raises(ValueError, match="high must be greater than low"):
        tr.randint(5, 5, (2,))


def test_pretrained_true_is_refused_like_a_weights_name_and_num_workers_is_accepted():
    with pytest.raises(ValueError, match="cannot download pretrained weights"):
        tr.models.resnet18(pretrained=True)
    assert tr.models.resnet18(pretrained=False, num_classes=3).fc.weight.shape == (3, 512)
    from tinyresnet.data import DataLoader, TensorDataset
    loader = DataLoader(TensorDataset(np.zeros((4, 1, 2, 2), np.float32), np.arange(4)), batch_size=2, num_workers=2)
    assert [x.shape for x, _ in loader] == [(2, 1, 2, 2), (2, 1, 2, 2)]
