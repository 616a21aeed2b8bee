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
# # 02 · Skip connections and the identity
#
# A residual block does not compute its output H(x) directly. It computes a correction F(x) and adds
# the input back: out = relu(F(x) + x), with F(x) = bn2(conv2(relu(bn1(conv1(x))))). The ResNet
# document's argument (§2, §4) is that "do nothing" is then easy: a block whose F is zero passes its
# input through. This tutorial measures that claim three ways:
#
# 1. with `zero_init_residual=True` the last BN of every block starts with γ = 0, so F(x) = 0 exactly
#    and every block of a fresh network returns relu(x), which is x itself (the input came out of a ReLU);
# 2. the document's small examples (y = z₂ + x, and "slightly wrong weights") recomputed by the engine;
# 3. how far the blocks of a *trained* ResNet-20 move away from the identity: ‖F(x)‖ / ‖x‖ per block.
#
# **What you will learn**
# - why a residual block with a zero branch is exactly the identity, and how `zero_init_residual` uses it;
# - how the gradient reaches the input of a block through the skip unchanged (∂(F + x)/∂x = I + ∂F/∂x);
# - why imperfect weights hurt a residual pair less than a plain pair (error ∝ ε² against ε);
# - how to measure how far trained blocks move from the identity.
#
# **The claims tested here**
# - *A block learns a residual*: the ResNet paper (He et al., 2016, §3.1 and Eq. 1) writes a block as
#   y = F(x) + x; if the identity were the best mapping, the solver only has to push F's weights to zero,
#   which it argues is easier than fitting an identity with a stack of non-linear layers.
# - *Zero-initialised residual branches*: setting the last BN's γ of every block to 0 (Goyal et al., 2017,
#   §5.1) makes every block start as the identity.
# - *Gradients through the skip*: the course text's worked example adds a hand-set 2×2×2 branch output z₂
#   to an input x and states y = z₂ + x, with ∂y/∂x = 1 on every element.
# - *Learned residuals are small*: the paper's Fig. 7 shows that the layer responses of residual nets
#   have smaller standard deviations than those of plain nets.
#
# Run as a script: `python tutorials/02_skip_connections.py [--quick] [--out DIR]`; as a notebook: open it in
# Jupyter with jupytext (set `QUICK = True` in the first cell, or start Jupyter with `TINYRESNET_QUICK=1`).

# %%
QUICK = None   # None: follow TINYRESNET_QUICK=1 or --quick; True: the small fast run; False: the full run
import _common
import numpy as np

import tinyresnet as tr
from tinyresnet import course, models, nn
from tinyresnet import functional as F
from tinyresnet.models import BasicBlock

args = _common.setup("02_skip_connections", "Skip connections: a block with F(x) = 0 is the identity", quick=QUICK)
results = {}

# %% [markdown]
# ## 1. zero_init_residual: every block starts as the identity
#
# We build ResNet-20 for the 1-channel digits twice, with and without `zero_init_residual`, and push a
# batch of 64 digits through it. A forward hook on each block records its input x; we then compute the
# two terms of the block separately, F(x) and shortcut(x), and the block's own output. The first blocks
# of stages 2 and 3 halve the map and double the channels; their shortcut (option A) keeps every second
# pixel and pads zero channels, so for them "identity" means relu(shortcut(x)).
#
# **Predict.** With γ = 0 in every block's last BN, how far is a block's output from relu(shortcut(x)),
# at most, over 64 digits and the 9 blocks? Pick one: "exactly 0", "about 1e-7" (float32 rounding),
# "about 0.01" or "about 1".

# %%
my_prediction = None      # e.g. "about 1e-7"
course.predict("02.zero_init_deviation", my_prediction, options=["exactly 0", "about 1e-7", "about 0.01", "about 1"])

# %%
x_batch, _ = _common.batch_of_digits(64, seed=args.seed)


def residual_branch(block, x):
    """F(x): everything in the block except the shortcut and the final ReLU."""
    out = block.relu(block.bn1(block.conv1(x)))
    return block.bn2(block.conv2(out))


def shortcut(block, x):
    return x if block.downsample is None else block.downsample(x)


def block_inputs(model, x):
    """The input of every residual block for the batch ``x`` (one forward pass with hooks)."""
    seen, handles = [], []
    for name, module in model.named_modules():
        if isinstance(module, BasicBlock):
            handles.append(module.register_forward_hook(
                lambda m, inputs, out, name=name: seen.append((name, m, inputs[0]))))
    with tr.no_grad():
        model(tr.Tensor(x))
    for h in handles:
        h.remove()
    return seen


def measure_blocks(model, x):
    """Per block: max |block(x) − relu(shortcut(x))| and ‖F(x)‖ / ‖shortcut(x)‖."""
    rows = []
    with tr.no_grad():
        for name, block, inp in block_inputs(model, x):
            f = residual_branch(block, inp).numpy()
            s = shortcut(block, inp).numpy()
            out = block(inp).numpy()
            rows.append({"block": name, "max_abs_deviation": float(np.abs(out - np.maximum(s, 0)).max()),
                         "relative_F": float(np.linalg.norm(f) / np.linalg.norm(s))})
    return rows


for mode in ("train", "eval"):
    nn.manual_seed(args.seed)
    model = models.resnet20(num_classes=10, in_channels=1, zero_init_residual=True)
    model.train(mode == "train")
    rows = measure_blocks(model, x_batch)
    worst = max(r["max_abs_deviation"] for r in rows)
    print(f"zero_init_residual, {mode} mode: over {len(rows)} blocks, max |block(x) − relu(shortcut(x))| = {worst:.1e}")
    results[f"zero_init_max_deviation_{mode}"] = worst

nn.manual_seed(args.seed)
standard = models.resnet20(num_classes=10, in_channels=1)
rows_standard = measure_blocks(standard, x_batch)
print("standard initialisation (γ = 1): ‖F(x)‖ / ‖x‖ per block =",
      " ".join(f"{r['relative_F']:.2f}" for r in rows_standard))
results["init_relative_F_standard"] = [r["relative_F"] for r in rows_standard]
worst = max(results["zero_init_max_deviation_train"], results["zero_init_max_deviation_eval"])
course.check_prediction("02.zero_init_deviation", "exactly 0" if worst == 0 else "about 1e-7" if worst < 1e-5
                        else "about 0.01" if worst < 0.1 else "about 1")

# %% [markdown]
# The deviation is exactly 0.0, not merely small: with γ = 0 and β = 0 the last BN outputs exact zeros,
# F(x) + x is x bit for bit, and relu(x) = x because every block input left a ReLU. With the standard
# initialisation (γ = 1) the correction F(x) is of the same size as x at the start (0.55 to 1.4 times
# its norm here), because BN scales F to unit variance per channel whatever the weights.
#
# ## 2. The document's numbers, recomputed
#
# §4 of the document adds a 2×2 corner of z₂ (the second convolution's output, set by hand) to the same
# corner of the input x. We let the engine do the addition, and check the claim that the gradient reaches
# x through the skip unchanged: with y = z₂ + x, ∂y/∂x = 1 for every element.

# %%
z2 = tr.tensor(np.array([[[[-0.3, 0.5], [0.2, -0.1]], [[0.2, -0.4], [-0.3, 0.1]]]]), requires_grad=True)
x_doc = tr.tensor(np.array([[[[1.0, 2.0], [2.0, 3.0]], [[5.0, 6.0], [6.0, 7.0]]]]), requires_grad=True)
y = z2 + x_doc                                        # the residual addition, (1, 2, 2, 2)
document_y = np.array([[[[0.7, 2.5], [2.2, 2.9]], [[5.2, 5.6], [5.7, 7.1]]]])
y.sum().backward()
print("y = z₂ + x, channel 0:", y.numpy()[0, 0].tolist(), " channel 1:", y.numpy()[0, 1].tolist())
print("the document's y:      ", document_y[0, 0].tolist(), "                   ", document_y[0, 1].tolist())
print(f"max |engine − document| = {np.abs(y.numpy() - document_y).max():.1e}")
print("∂(Σy)/∂x =", np.unique(x_doc.grad).tolist(), " ∂(Σy)/∂z₂ =", np.unique(z2.grad).tolist())
results["doc_y_max_error"] = float(np.abs(y.numpy() - document_y).max())

# %% [markdown]
# §2 of the document compares learning the identity directly, H(x) = relu(W₂ relu(W₁ x)) with W₁ = W₂ = I,
# against learning a zero correction, H(x) = W₂ relu(W₁ x) + x with weights ≈ 0. It gives the weights
# (W₁ "slightly off" = [[0.9, 0.1], [0.1, 0.9]], and 0.01 everywhere for the residual version) but no
# input, so we pick x = (1, 2) and measure how far each output is from x.

# %%
x_pair = tr.tensor(np.array([[1.0, 2.0]]))
identity = np.eye(2)
slightly_off = np.array([[0.9, 0.1], [0.1, 0.9]])
small = np.full((2, 2), 0.01)


def plain_pair(w1, w2, x):
    return F.relu(F.linear(F.relu(F.linear(x, tr.tensor(w1))), tr.tensor(w2)))


def residual_pair(w1, w2, x):
    return F.linear(F.relu(F.linear(x, tr.tensor(w1))), tr.tensor(w2)) + x


cases = {"plain, W₁ = W₂ = I": plain_pair(identity, identity, x_pair),
         "plain, W₁ slightly off": plain_pair(slightly_off, identity, x_pair),
         "residual, W₁ = W₂ = 0.01": residual_pair(small, small, x_pair)}
for label, h in cases.items():
    print(f"{label:<26} H(x) = {np.round(h.numpy()[0], 6).tolist()}   ‖H(x) − x‖ = "
          f"{np.linalg.norm(h.numpy() - x_pair.numpy()):.2e}")
results["doc_identity_example"] = {k: np.linalg.norm(v.numpy() - x_pair.numpy()) for k, v in cases.items()}

# %% [markdown]
# One example proves little, so we repeat it with random errors: 16-dimensional inputs, weights that
# miss their target (I for the plain pair, 0 for the residual pair) by Gaussian noise of size ε, and
# the average distance of H(x) from x over 200 draws. The plain pair's error grows like ε, the residual
# pair's like ε² (its correction is a product of two small matrices): for ε = 0.01 the residual pair
# is about a hundred times closer to the identity.
#
# **Predict.** On a log-log plot of the error against ε, the plain pair's line has slope 1. What slope
# will the residual pair's line have? (A number; within 0.3 counts.)

# %%
my_prediction = None      # a number, e.g. 1.5
course.predict("02.slope_residual", my_prediction, tolerance=0.3)

# %%
rng = np.random.default_rng(args.seed)
dim, draws = 16, 50 if args.quick else 200
epsilons = np.logspace(-3, -0.5, 6 if args.quick else 11)
plain_err, residual_err = [], []
for eps in epsilons:
    p_e, r_e = [], []
    for _ in range(draws):
        x_r = tr.tensor(np.abs(rng.standard_normal((1, dim))))          # a non-negative input, as after a ReLU
        w1, w2 = rng.standard_normal((2, dim, dim)) * eps / np.sqrt(dim)
        p_e.append(np.linalg.norm(plain_pair(np.eye(dim) + w1, np.eye(dim) + w2, x_r).numpy() - x_r.numpy()))
        r_e.append(np.linalg.norm(residual_pair(w1, w2, x_r).numpy() - x_r.numpy()))
    plain_err.append(np.mean(p_e) / np.sqrt(dim))
    residual_err.append(np.mean(r_e) / np.sqrt(dim))
slope_plain = np.polyfit(np.log(epsilons), np.log(plain_err), 1)[0]
slope_residual = np.polyfit(np.log(epsilons), np.log(residual_err), 1)[0]
print(f"log-log slope of the error against ε: plain {slope_plain:.2f}, residual {slope_residual:.2f}")
results.update(slope_plain=slope_plain, slope_residual=slope_residual)
course.check_prediction("02.slope_residual", slope_residual)

fig, ax = _common.plt.subplots(figsize=(5.2, 3.8))
ax.loglog(epsilons, plain_err, "o-", label=f"plain: relu(W₂ relu(W₁x)), W ≈ I  (slope {slope_plain:.2f})")
ax.loglog(epsilons, residual_err, "s-", label=f"residual: W₂ relu(W₁x) + x, W ≈ 0  (slope {slope_residual:.2f})")
ax.set(xlabel="weight error ε", ylabel="mean |H(x) − x| per coordinate",
       title="How far from the identity, with imperfect weights")
ax.legend(loc="upper left")
_common.save_figure(fig, args, "identity_error.png")

# %% [markdown]
# ## 3. Do trained blocks stay near the identity?
#
# We train ResNet-20 (with `zero_init_residual`) on the digits for a few epochs and measure, per block,
# ‖F(x)‖ / ‖x‖ again, on the same 64 training digits, in evaluation mode. The paper (He et al. 2015,
# Fig. 7) reports that the responses of residual branches are generally small; here is what our run gives.
#
# **Predict.** After training, what will the median ‖F(x)‖ / ‖x‖ over the 9 blocks be? (A number;
# within a factor of 2 counts. At the start it is 0 with zero-init, and about 1 with γ = 1.)

# %%
my_prediction = None      # a number, e.g. 0.5
course.predict("02.trained_median_F", my_prediction, factor=2)

# %%
train, test, normalize = _common.digits(quick=args.quick)
epochs = 1 if args.quick else 8
nn.manual_seed(args.seed)
model = models.resnet20(num_classes=10, in_channels=1, zero_init_residual=True)
init_rows = measure_blocks(model.train(), x_batch)
history = _common.train(model, train, test, normalize, epochs, seed=args.seed, label="resnet20")
model.eval()
trained_rows = measure_blocks(model, x_batch)
ratios = [r["relative_F"] for r in trained_rows]
print("after training: ‖F(x)‖ / ‖x‖ per block =", " ".join(f"{v:.2f}" for v in ratios))
largest = trained_rows[int(np.argmax(ratios))]["block"]
print(f"median {np.median(ratios):.2f}, largest {max(ratios):.2f} (block {largest})"
      f"; test error {100 * _common.last(history, 'test_err'):.2f}%")
results.update(trained_relative_F=ratios, trained_test_err=_common.last(history, "test_err"), epochs=epochs)
course.check_prediction("02.trained_median_F", float(np.median(ratios)))

fig, ax = _common.plt.subplots(figsize=(7, 3.6))
names = [r["block"] for r in trained_rows]
where = np.arange(len(names))
ax.bar(where - 0.27, [r["relative_F"] for r in init_rows], 0.27, label="zero_init_residual, at init (all 0)")
ax.bar(where, [r["relative_F"] for r in rows_standard], 0.27, label="standard init (γ = 1), at init")
ax.bar(where + 0.27, ratios, 0.27, label=f"zero_init_residual, after {epochs} epoch(s)")
ax.set_xticks(where)
ax.set_xticklabels(names, rotation=40, ha="right")
ax.set(ylabel="‖F(x)‖ / ‖shortcut(x)‖", title="Size of each block's correction relative to its input (ResNet-20)")
ax.legend()
_common.save_figure(fig, args, "block_corrections.png")
_common.save_results(args, results)

# %% [markdown]
# **What was measured** (numbers in `output.txt` and `results.json`): the zero-initialised blocks return
# relu(shortcut(x)) exactly (deviation 0.0 in training and eval mode); the document's y = z₂ + x table
# is reproduced to rounding, and ∂y/∂x = 1 through the skip; with imperfect weights, a residual pair
# stays closer to the identity by a factor that grows as the error shrinks (error slope ≈ 2 against ≈ 1
# on a log-log scale); after 8 epochs (5.85% test error in the committed run), every block's correction
# is smaller than its input: ‖F(x)‖ / ‖x‖ between 0.20 and 0.43, median 0.30.

# %% [markdown]
# ## Exercise 02.1 · Zero-initialise by hand
#
# `zero_init_residual=True` does it for you. Write `zero_init(model)` that does it by hand for a standard
# ResNet-20: set the γ (`weight`) of the *last* BN of every `BasicBlock` to zero and nothing else. The
# engine builds a fresh ResNet-20, applies your function and checks that a block then returns its input
# exactly and that no other BN changed. (Hint: `model.modules()`, `block.bn2.weight.data`.)

# %%
def zero_init(model):
    ...                       # your code here


answer = None                 # replace by zero_init once it is written
course.check_exercise("02.1", answer)
course.scoreboard()
