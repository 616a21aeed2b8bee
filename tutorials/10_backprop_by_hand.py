# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 10 · Backpropagation through one residual block, by hand
#
# We take one basic block, conv → BN → ReLU → conv → BN → (+ x) → ReLU, on the ResNet document's 4×4
# input with 2 channels (§4), and follow it step by step:
#
# 1. the forward pass, one op at a time, printing every intermediate array;
# 2. the block's autograd graph, drawn with `tinyresnet.viz` (the skip connection is the curved arrow);
# 3. the backward pass written out in NumPy, one line per rule (the ReLU mask, the addition that sends
#    the same gradient down both paths, batch norm's three-term formula, a convolution's gradient as a
#    loop over output pixels), compared with the engine's gradients;
# 4. every gradient compared with finite differences (`tinyresnet.gradcheck`).
#
# Everything runs in float64 so the comparisons are exact to about 1e-12.
#
# **What you will learn**
# - the forward pass of a basic block op by op, and the graph the engine records for it;
# - the backward rules one line each: ReLU's mask, the addition's copy, batch norm's three terms, a convolution;
# - how finite differences (`gradcheck`) confirm a hand-written backward independently.
#
# **The claims tested here**
# - *The gradient splits at the skip*: for y = F(x) + x, ∂L/∂x = ∂L/∂y + (∂F/∂x)ᵀ ∂L/∂y: one part reaches x
#   unchanged through the identity (He et al., 2016, Identity Mappings in Deep Residual Networks, Eq. 5), as the
#   course text's §8 also states.
# - *The course text's 4×4 two-channel input* (channel 0 rows 1 2 3 4 / 2 3 4 5 / …, channel 1 rows 5 6 7 8 / …) is
#   used as the block's input; the weights are our own, seeded.
#
# Run: `python tutorials/10_backprop_by_hand.py [--quick] [--out DIR]`, or open it in Jupyter with
# jupytext (quick: `QUICK = True` in the first cell, or start Jupyter with `TINYRESNET_QUICK=1`).

# %%
QUICK = None   # None: follow TINYRESNET_QUICK=1 or --quick; True: the small fast run; False: the full run
import _common
import numpy as np

import tinyresnet as tr
from tinyresnet import course, viz
from tinyresnet import functional as F
from tinyresnet.gradcheck import gradcheck
from tinyresnet.models import BasicBlock

args = _common.setup("10_backprop_by_hand", "Forward and backward of one residual block, step by step", quick=QUICK)
np.set_printoptions(precision=3, suppress=True, linewidth=120)
rng = np.random.default_rng(args.seed)
results = {}


def show(name, array):
    """Print a (1, 2, H, W) array as its two channels side by side."""
    a = np.asarray(array)[0]
    rows = [f"{'  '.join(' '.join(f'{v:7.3f}' for v in a[c, i]) for c in range(a.shape[0]))}"
            for i in range(a.shape[1])]
    print(f"{name}  {a.shape}   channel 0{' ' * 23}channel 1")
    for r in rows:
        print("    " + r)


# %% [markdown]
# ## The block and its input
#
# The input is the document's x (channel 0 rows 1 2 3 4 / 2 3 4 5 / …, channel 1 rows 5 6 7 8 / …).
# The weights are random (seeded); we give the BN layers γ ≠ 1 and β ≠ 0 so that their gradients are
# not trivial. BN runs in training mode: it normalises with the batch's own mean and variance over
# (N, H, W), the case whose backward has the extra terms.

# %%
x_data = np.array([[[1, 2, 3, 4], [2, 3, 4, 5], [3, 4, 5, 6], [4, 5, 6, 7]],
                   [[5, 6, 7, 8], [6, 7, 8, 9], [7, 8, 9, 0], [8, 9, 0, 1]]], dtype=np.float64)[None]
block = BasicBlock(2, 2).double()
weights = {
    "w1": rng.standard_normal((2, 2, 3, 3)) * 0.4, "g1": np.array([1.2, 0.8]), "b1": np.array([0.1, -0.2]),
    "w2": rng.standard_normal((2, 2, 3, 3)) * 0.4, "g2": np.array([0.9, 1.1]), "b2": np.array([-0.1, 0.3]),
}
block.load_state_dict({"conv1.weight": weights["w1"], "bn1.weight": weights["g1"], "bn1.bias": weights["b1"],
                       "conv2.weight": weights["w2"], "bn2.weight": weights["g2"], "bn2.bias": weights["b2"]},
                      strict=False)                  # the BN running statistics keep their defaults
R = rng.standard_normal((1, 2, 4, 4))        # the loss is L = Σ out ⊙ R, so ∂L/∂out = R
print("the loss: L = Σ out ⊙ R for a fixed random R, so the gradient arriving at the output is R itself")

# %% [markdown]
# ## 1. Forward, one op at a time
#
# Each line is one call into the engine's functional API (the same ops `BasicBlock.forward` uses).
# `retain_grad()` asks the engine to keep the gradients of these intermediate tensors too.

# %%
x = tr.tensor(x_data, requires_grad=True)
w1, w2 = (tr.tensor(weights[k].copy(), requires_grad=True) for k in ("w1", "w2"))
g1, b1, g2, b2 = (tr.tensor(weights[k].copy(), requires_grad=True) for k in ("g1", "b1", "g2", "b2"))
stats = [np.zeros(2), np.ones(2), np.zeros(2), np.ones(2)]       # running mean/var: updated, not used in training mode

z1 = F.conv2d(x, w1, padding=1).retain_grad()                    # (1, 2, 4, 4)
n1 = F.batch_norm(z1, stats[0], stats[1], g1, b1, training=True).retain_grad()
a1 = F.relu(n1).retain_grad()
z2 = F.conv2d(a1, w2, padding=1).retain_grad()
n2 = F.batch_norm(z2, stats[2], stats[3], g2, b2, training=True).retain_grad()   # F(x)
y = (n2 + x).retain_grad()                                       # the skip connection: F(x) + x
out = F.relu(y)
for name, t in (("x", x), ("z1 = conv1(x)", z1), ("n1 = bn1(z1)", n1), ("a1 = relu(n1)", a1),
                ("z2 = conv2(a1)", z2), ("n2 = bn2(z2) = F(x)", n2), ("y = F(x) + x", y), ("out = relu(y)", out)):
    show(name, t.numpy())
same = np.abs(block(tr.tensor(x_data)).numpy() - out.numpy()).max()
print(f"the same block as a module, BasicBlock(2, 2)(x): max difference {same:.1e}")
print(f"closest values to a ReLU kink: min |n1| = {np.abs(n1.numpy()).min():.3f}, "
      f"min |y| = {np.abs(y.numpy()).min():.3f} (finite differences with step 1e-3 need them away from 0)")
results["module_vs_steps"] = float(same)

# %% [markdown]
# ## 2. The graph the engine recorded
#
# Blue boxes are ops, orange ones are leaves that need gradients (the input and the six weight
# tensors), green is the output. The input x feeds two ops: the first convolution and the addition.
# During backward the engine adds the two gradients that come back to x.

# %%
names = {"x": x, "conv1.weight": w1, "bn1.weight": g1, "bn1.bias": b1, "conv2.weight": w2, "bn2.weight": g2,
         "bn2.bias": b2, "out": out}
print(viz.format_graph(out, names))
fig = viz.draw_graph(out, names, title="autograd graph of one BasicBlock (x is used twice)")
_common.save_figure(fig, args, "block_graph.png")

# %% [markdown]
# ## 3. Backward: the engine, then by hand
#
# The engine's answer first: one call.
#
# **Predict.** The gradient reaching x is the sum of two parts: ∂L/∂y through the skip and the part through F. Which
# will have the larger norm: the skip part, the F part, or about equal (within 10%)?

# %%
my_prediction = None      # one of the options
course.predict("10.skip_vs_branch", my_prediction, options=["the skip part", "the F part", "about equal"])

# %% [markdown]
# The engine:

# %%
loss = (out * tr.tensor(R)).sum()
loss.backward()
engine = {"x": x.grad, "w1": w1.grad, "g1": g1.grad, "b1": b1.grad, "w2": w2.grad, "g2": g2.grad, "b2": b2.grad,
          "z1": z1.grad, "n1": n1.grad, "a1": a1.grad, "z2": z2.grad, "n2": n2.grad, "y": y.grad}
print(f"L = {loss.item():.6f}")


# %% [markdown]
# Now by hand. Two helpers: batch norm's backward and a convolution's backward. For batch norm with
# x̂ = (z − μ)/σ over the (N, H, W) values of a channel, out = γ·x̂ + β:
#
#     dβ = Σ dout,  dγ = Σ dout·x̂,  dz = (γ/σ)·(dout − mean(dout) − x̂·mean(dout·x̂))
#
# For a convolution, every output pixel (i, j) of channel oc was Σ w[oc] ⊙ (the 3×3 patch of the padded
# input at (i, j)); so its gradient adds dout[oc, i, j]·patch to dw[oc] and dout[oc, i, j]·w[oc] to
# that patch of dx. We write exactly that loop.

# %%
def bn_backward(dout, z, gamma, eps=1e-5):
    mu = z.mean(axis=(0, 2, 3), keepdims=True)
    sigma = np.sqrt(z.var(axis=(0, 2, 3), keepdims=True) + eps)
    xhat = (z - mu) / sigma
    dbeta = dout.sum(axis=(0, 2, 3))
    dgamma = (dout * xhat).sum(axis=(0, 2, 3))
    g = gamma[None, :, None, None]
    dz = g / sigma * (dout - dout.mean(axis=(0, 2, 3), keepdims=True)
                      - xhat * (dout * xhat).mean(axis=(0, 2, 3), keepdims=True))
    return dz, dgamma, dbeta


def conv_backward(dout, inp, weight, padding=1):
    N, C, H, W = inp.shape
    OC, _, KH, KW = weight.shape
    padded = np.pad(inp, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    dpadded, dweight = np.zeros_like(padded), np.zeros_like(weight)
    for n in range(N):
        for oc in range(OC):
            for i in range(dout.shape[2]):
                for j in range(dout.shape[3]):
                    patch = padded[n, :, i:i + KH, j:j + KW]                     # (C, KH, KW)
                    dweight[oc] += dout[n, oc, i, j] * patch
                    dpadded[n, :, i:i + KH, j:j + KW] += dout[n, oc, i, j] * weight[oc]
    return dpadded[:, :, padding:padding + H, padding:padding + W], dweight


v = {name: t.numpy() for name, t in (("z1", z1), ("n1", n1), ("z2", z2), ("y", y))}
hand = {}
dout = R                                                     # ∂L/∂out
hand["y"] = dout * (v["y"] > 0)                              # ReLU passes the gradient where y > 0
hand["n2"] = hand["y"]                                       # y = n2 + x: ∂y/∂n2 = 1 ...
dx_skip = hand["y"]                                          # ... and ∂y/∂x = 1: the skip path
hand["z2"], hand["g2"], hand["b2"] = bn_backward(hand["n2"], v["z2"], weights["g2"])
hand["a1"], hand["w2"] = conv_backward(hand["z2"], F.relu(tr.tensor(v["n1"])).numpy(), weights["w2"])
hand["n1"] = hand["a1"] * (v["n1"] > 0)
hand["z1"], hand["g1"], hand["b1"] = bn_backward(hand["n1"], v["z1"], weights["g1"])
dx_branch, hand["w1"] = conv_backward(hand["z1"], x_data, weights["w1"])
hand["x"] = dx_skip + dx_branch                              # x fed two ops: their gradients add

print(f"{'gradient of':<14} {'shape':<14} {'max |hand − engine|':>20}")
hand_vs_engine = {}
for name in ("y", "n2", "z2", "g2", "b2", "w2", "a1", "n1", "z1", "g1", "b1", "w1", "x"):
    diff = float(np.abs(hand[name] - engine[name]).max())
    hand_vs_engine[name] = diff
    print(f"{name:<14} {str(hand[name].shape):<14} {diff:>20.1e}")
results["hand_vs_engine_max"] = max(hand_vs_engine.values())
show("∂L/∂x through the skip (= ∂L/∂y)", dx_skip)
show("∂L/∂x through F", dx_branch)
show("∂L/∂x = the sum", hand["x"])
print(f"‖skip part‖ = {np.linalg.norm(dx_skip):.3f}, ‖F part‖ = {np.linalg.norm(dx_branch):.3f}, "
      f"‖total‖ = {np.linalg.norm(hand['x']):.3f}: ∂y/∂x = ∂F/∂x + 1, as §8 of the document says")
results.update(norm_skip=np.linalg.norm(dx_skip), norm_branch=np.linalg.norm(dx_branch))
ratio = np.linalg.norm(dx_skip) / np.linalg.norm(dx_branch)
course.check_prediction("10.skip_vs_branch", "about equal" if 1 / 1.1 <= ratio <= 1.1 else "the skip part"
                        if ratio > 1 else "the F part")

# %% [markdown]
# ## 4. Finite differences
#
# `gradcheck` perturbs every entry of every input by ±h and ±2h (h = 1e-3), recomputes the block's
# output and compares the fourth-order difference quotient with the engine's gradient. It uses its own
# random weighting of the outputs, so this is an independent check of the whole backward pass.

# %%
def block_forward(x, w1, g1, b1, w2, g2, b2):
    rm, rv = np.zeros(2), np.ones(2)
    out = F.relu(F.batch_norm(F.conv2d(x, w1, padding=1), rm, rv, g1, b1, training=True))
    out = F.batch_norm(F.conv2d(out, w2, padding=1), rm, rv, g2, b2, training=True)
    return F.relu(out + x)


inputs = [tr.tensor(x_data, requires_grad=True)] + [tr.tensor(weights[k], requires_grad=True)
                                                     for k in ("w1", "g1", "b1", "w2", "g2", "b2")]
report = gradcheck(block_forward, inputs, names=["x", "conv1.weight", "bn1.weight", "bn1.bias", "conv2.weight",
                                                 "bn2.weight", "bn2.bias"])
print(report)
results.update(gradcheck_ok=report.ok, gradcheck_max_rel_error=report.max_rel_error,
               gradcheck={r.name: r.max_rel_error for r in report.inputs})

# %% [markdown]
# ## Figure: every array of the forward pass and its gradient

# %%
rows = [("x", x_data, hand["x"]), ("z1 = conv1(x)", v["z1"], hand["z1"]), ("n1 = bn1(z1)", v["n1"], hand["n1"]),
        ("a1 = relu(n1)", a1.numpy(), hand["a1"]), ("z2 = conv2(a1)", v["z2"], hand["z2"]),
        ("n2 = bn2(z2)", n2.numpy(), hand["n2"]), ("y = n2 + x", v["y"], hand["y"]), ("out = relu(y)", out.numpy(), R)]
fig, axes = _common.plt.subplots(len(rows), 4, figsize=(8, 2.0 * len(rows)))
for r, (name, value, grad) in enumerate(rows):
    for c in range(2):
        for k, (array, cmap, what) in enumerate(((value, "viridis", "value"), (grad, "RdBu_r", "∂L/∂"))):
            ax = axes[r, 2 * k + c]
            limit = np.abs(array).max() or 1
            ax.imshow(array[0, c], cmap=cmap, vmin=-limit if k else None, vmax=limit if k else None)
            for (i, j), val in np.ndenumerate(array[0, c]):
                ax.text(j, i, f"{val:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if (val < array.mean() if k == 0 else abs(val) > 0.6 * limit) else "black")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            label = name.split(" = ")[0]
            ax.set_title(f"{name if what == 'value' else what + label}  ch{c}", fontsize=7)
fig.suptitle("forward values (left) and gradients (right) of one residual block", y=1.0)
fig.tight_layout()
_common.save_figure(fig, args, "forward_backward_arrays.png")
_common.save_results(args, results)

# %% [markdown]
# **What was measured**: the step-by-step forward equals `BasicBlock.forward` exactly; the hand-written
# backward equals the engine's gradients to about 1e-15 for all 13 arrays; `gradcheck` agrees with
# both to a relative error of about 1e-10 or better for the input and all six weight tensors. The
# gradient reaching x is the sum of the skip part (∂L/∂y, untouched) and the part through F.

# %% [markdown]
# ## Exercise 10.1 · The backward of the residual add and its ReLU
#
# Write `add_relu_backward(f, x, dout)` for out = relu(f + x): return the pair (∂L/∂f, ∂L/∂x through
# the skip), given the arrays f, x and dout = ∂L/∂out. The engine compares both with its autograd.

# %%
def add_relu_backward(f, x, dout):
    ...                       # your code here


answer = None                 # replace by add_relu_backward once it is written
course.check_exercise("10.1", answer)
course.scoreboard()
