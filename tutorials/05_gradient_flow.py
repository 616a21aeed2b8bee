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
# # 05 · Gradient flow at initialisation
#
# The ResNet document (§1, §4, §8) explains the trouble with deep plain networks by the chain rule:
# the gradient reaching layer 1 is a product of one factor per layer above it, so it "vanishes" when
# the factors are below 1 (or explodes when they are above), while a skip connection adds a path whose
# factor is exactly 1. Here we measure it. For plain and residual networks of 20, 56 and 110 layers
# (the CIFAR networks of the ResNet paper, freshly initialised), we run one batch of digits forward,
# take the cross-entropy loss, run backward, and record
#
# * the norm of the gradient of every convolution's weights, ‖∂L/∂W_l‖, layer by layer, and
# * the norm of the gradient reaching the output of every block, ‖∂L/∂a_l‖.
#
# First with the networks as they are built (BatchNorm after every convolution, He initialisation),
# then with BatchNorm removed, to see which part of the textbook argument applies to which network.
#
# **What you will learn**
# - how to record per-layer gradient norms with hooks and `retain_grad()`;
# - what the chain rule predicts for deep plain networks, and what actually happens with BatchNorm;
# - why the skip connections keep every layer's gradient within about one order of magnitude.
# - how to step through one block with `tinyresnet.trace` and split its ∂L/∂x into the skip's part and the branch's.
#
# **The claims tested here**
# - *Vanishing gradients in deep plain nets*: the course text explains the degradation of plain networks by a
#   product of per-layer factors that shrinks toward the input. The ResNet paper (He et al., 2016, §4.1) argues the
#   opposite for its BN networks: it says the plain nets' forward signals and backward gradients do not vanish, and
#   that their trouble is an optimisation difficulty.
# - *The skip adds a path with factor 1*: with y = x + F(x), ∂L/∂x = ∂L/∂y · (1 + ∂F/∂x), so the gradient reaches
#   earlier layers through the identity term (He et al., 2016, Identity Mappings, Eq. 5).
#
# Run: `python tutorials/05_gradient_flow.py [--quick] [--out DIR]`, or open it in Jupyter with
# jupytext (quick: `QUICK = True` in the first cell, or start Jupyter with `TINYRESNET_QUICK=1`).

# %%
QUICK = None   # None: follow TINYRESNET_QUICK=1 or --quick; True: the small fast run; False: the full run
import _common
import numpy as np

import tinyresnet as tr
from tinyresnet import course, models, nn
from tinyresnet import functional as F
from tinyresnet.models import BasicBlock
from tinyresnet.nn import BatchNorm2d, Conv2d, Identity

args = _common.setup("05_gradient_flow", "Per-layer gradient norms at initialisation, plain against residual",
                     quick=QUICK)
depths = (20, 56, 110)
batch = 16 if args.quick else 32
side = 8 if args.quick else 32
x, labels = _common.batch_of_digits(batch, seed=args.seed)
if side != 8:       # the networks were designed for 32×32 CIFAR images: enlarge the digits 4× (nearest pixel)
    x = x.repeat(side // 8, axis=2).repeat(side // 8, axis=3)
print(f"one batch of {batch} digits of {side}×{side} pixels; cross-entropy loss against their labels")


# %% [markdown]
# ## The measurement
#
# A forward hook on every block calls `retain_grad()` on the block's output, so that after backward the
# engine has kept ∂L/∂a for it, as it does for the weights.
#
# **Predict.** In plain-110 with BatchNorm, freshly initialised, what is ‖∂L/∂W‖ of the first convolution divided by
# the last one's: much below 1 (the gradient vanishes toward the input), between 0.1 and 10, or much above 1 (it
# explodes)?

# %%
my_prediction = None      # one of the options
course.predict("05.plain110_ratio", my_prediction,
               options=["much below 1 (vanishes)", "between 0.1 and 10", "much above 1 (explodes)"])

# %% [markdown]
# **Predict.** And for ResNet-110? A number; within a factor of 5 counts.

# %%
my_prediction = None      # a number, e.g. 1
course.predict("05.resnet110_ratio", my_prediction, factor=5)

# %%
def without_batchnorm(model):
    """Replace every BatchNorm2d by Identity (in place); return the model."""
    for _, module in list(model.named_modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, BatchNorm2d):
                setattr(module, name, Identity())
    return model


def gradient_norms(name, batchnorm=True):
    nn.manual_seed(args.seed)
    model = models.get_model(name, num_classes=10, in_channels=1)
    if not batchnorm:
        without_batchnorm(model)
    outputs = []
    hooks = [m.register_forward_hook(lambda m, i, out: outputs.append(out.retain_grad()))
             for m in model.modules() if isinstance(m, BasicBlock)]
    loss = F.cross_entropy(model(tr.Tensor(x)), labels)
    loss.backward()
    for h in hooks:
        h.remove()
    weight_norms = [float(np.linalg.norm(m.weight.grad)) for m in model.modules() if isinstance(m, Conv2d)]
    block_norms = [float(np.linalg.norm(o.grad)) for o in outputs]
    return {"loss": float(loss.item()), "weight_grad_norms": weight_norms, "block_grad_norms": block_norms}


results = {"batch": batch, "side": side, "with_bn": {}, "without_bn": {}}
for key, batchnorm in (("with_bn", True), ("without_bn", False)):
    print(f"\n{'with BatchNorm (as built)' if batchnorm else 'BatchNorm replaced by Identity'}:")
    print(f"{'network':<10} {'loss':>10} {'‖∂L/∂W‖ first conv':>20} {'last conv':>10} {'first/last':>11}")
    for depth in depths:
        for kind in ("plain", "resnet"):
            name = f"{kind}{depth}"
            r = gradient_norms(name, batchnorm)
            w = r["weight_grad_norms"]
            r["first_over_last"] = w[0] / w[-1]
            results[key][name] = r
            print(f"{name:<10} {r['loss']:>10.3g} {w[0]:>20.2e} {w[-1]:>10.2e} {r['first_over_last']:>11.2e}")
course.check_prediction("05.resnet110_ratio", results["with_bn"]["resnet110"]["first_over_last"])
plain = results["with_bn"]["plain110"]["first_over_last"]
course.check_prediction("05.plain110_ratio", "much below 1 (vanishes)" if plain < 0.1 else "between 0.1 and 10"
                        if plain <= 10 else "much above 1 (explodes)")

# %% [markdown]
# ## Figures

# %%
colors = dict(zip(depths, ("tab:blue", "tab:orange", "tab:red")))
fig, axes = _common.plt.subplots(1, 3, figsize=(14, 4.2), sharey=False)
for ax, key, title in ((axes[0], "with_bn", "‖∂L/∂W‖ per conv layer, with BatchNorm"),
                       (axes[1], "without_bn", "‖∂L/∂W‖ per conv layer, BatchNorm removed")):
    for depth in depths:
        for kind, style in (("plain", "--"), ("resnet", "-")):
            values = results[key][f"{kind}{depth}"]["weight_grad_norms"]
            ax.semilogy(range(1, len(values) + 1), values, style, color=colors[depth], lw=1.3,
                        label=f"{kind}-{depth}")
    ax.set(title=title, xlabel="convolution layer (1 = next to the input)")
axes[0].set_ylabel("gradient norm (log scale)")
axes[0].legend(ncol=2)
for depth in depths:
    for kind, style in (("plain", "--"), ("resnet", "-")):
        values = results["with_bn"][f"{kind}{depth}"]["block_grad_norms"]
        axes[2].semilogy(np.linspace(0, 1, len(values)), values, style, color=colors[depth], lw=1.3,
                         label=f"{kind}-{depth}")
axes[2].set(title="‖∂L/∂a‖ at each block's output, with BatchNorm", xlabel="relative depth of the block (0 = first)")
fig.suptitle(f"Gradients at initialisation (one batch of {batch} digits, {side}×{side}): dashed plain, solid residual")
_common.save_figure(fig, args, "gradient_norms.png")

fig, ax = _common.plt.subplots(figsize=(5.5, 3.6))
where = np.arange(len(depths))
for offset, kind in ((-0.2, "plain"), (0.2, "resnet")):
    ax.bar(where + offset, [results["with_bn"][f"{kind}{d}"]["first_over_last"] for d in depths], 0.4,
           label=kind, log=True)
ax.set(xticks=where, xticklabels=[f"{d} layers" for d in depths], ylabel="‖∂L/∂W‖ first conv ÷ last conv",
       title="Imbalance of the gradient across depth (with BatchNorm)")
ax.axhline(1, color="black", lw=0.8)
ax.legend()
_common.save_figure(fig, args, "first_over_last.png")
_common.save_results(args, results)

# %% [markdown]
# **What was measured** (`output.txt`; the numbers below are from the full run, 32 digits at 32×32):
#
# * With BatchNorm, as the networks are built, the plain networks' gradient does **not** vanish toward
#   the input: it grows. The first convolution's weight gradient is about 16×, 2,300× and 7 million ×
#   the last one's for 20, 56 and 110 layers. This matches the gradient explosion of deep batch-normalised
#   plain networks (Yang et al., 2019). In the residual networks the same ratio stays at about 5×, 12×
#   and 28×: the skip connections keep every layer's gradient within roughly one order of magnitude.
# * Without BatchNorm, He initialisation does what it was designed for in the plain networks: the
#   per-layer gradient norms stay within a factor of 5, 7 and 12 of each other for 20, 56 and 110
#   layers, so nothing vanishes either, but the whole gradient is small. The residual networks without
#   BatchNorm blow up instead: each block adds its own variance to the signal, so the forward pass, the
#   loss and all gradients grow with depth (the loss of ResNet-110 is above 10⁸). This is why ResNets
#   normalise inside each block (and why `zero_init_residual`, tutorial 02, helps).
#
# So the document's picture of a product of per-layer factors is right, but on these networks the
# problem it predicts for plain nets is an explosion, not a vanishing.

# %% [markdown]
# ## Stepping through one block: how much of ∂L/∂x comes back through the skip
#
# The claim above, ∂L/∂x = ∂L/∂y · (1 + ∂F/∂x), says that a block's input gradient is the sum of two parts: the
# gradient of the sum y itself, handed straight back by the skip, and what the residual branch F sends back. The
# engine adds exactly these two arrays when it computes ∂L/∂x, so we can look at each. `tinyresnet.trace.record`
# records, for every layer call inside a model, its output and the gradient arriving at it (with forward hooks and
# `Tensor.register_hook`, which leave the values and gradients unchanged), plus each block's residual addition;
# `rec.split(block)` gives the block's ∂L/∂x as `skip + residual`. Its *share* column is each part's projection on
# the total, ⟨part, total⟩ / ⟨total, total⟩, so the two shares add up to 100%.
#
# **Predict.** In a freshly initialised ResNet-56 with BatchNorm, what share of ∂L/∂x comes back through the skip,
# taken as the median over its 27 blocks? A percentage; within 15 points counts.

# %%
my_prediction = None      # a percentage, e.g. 50
course.predict("05.skip_share", my_prediction, tolerance=15)

# %%
from tinyresnet import trace, viz


def traced(name):
    """One forward and backward pass of a fresh model under trace.record; returns (model, loss, recorder)."""
    nn.manual_seed(args.seed)
    model = models.get_model(name, num_classes=10, in_channels=1)
    images = tr.Tensor(x, requires_grad=True)      # so that the first block's input gradient exists too
    with trace.record(model) as rec:
        loss = F.cross_entropy(model(images), labels)
        loss.backward(retain_graph=True)           # kept for the drawing below
    return model, loss, rec


model20, loss20, rec20 = traced("resnet20")
print("\n".join(rec20.to_text().splitlines()[:16]), "\n...\n")   # the first rows: the stem, layer1.0 and its add
print(rec20.split("layer1.0"))
print(rec20.split("layer2.0"))                     # a downsampling block: the skip goes through its shortcut

skip_shares = {}
for name, rec in (("resnet20", rec20), ("resnet56", traced("resnet56")[2])):
    skip_shares[name] = [rec.split(b).rows()[0][4] for b in rec.blocks()]    # rows()[0]: the skip's row
    print(f"{name}: share of ∂L/∂x through the skip, per block: median {np.median(skip_shares[name]):.1%}, "
          f"range {min(skip_shares[name]):.1%} to {max(skip_shares[name]):.1%}")
results["skip_shares"] = skip_shares
_common.save_results(args, results)
course.check_prediction("05.skip_share", 100 * float(np.median(skip_shares["resnet56"])))

# %%
fig, ax = _common.plt.subplots(figsize=(6.5, 3.6))
for name, style in (("resnet20", "o-"), ("resnet56", ".-")):
    shares = skip_shares[name]
    ax.plot(np.linspace(0, 1, len(shares)), [100 * s for s in shares], style, lw=1.2, label=name)
ax.axhline(50, color="grey", lw=0.8)
ax.set(xlabel="relative depth of the block (0 = first)", ylabel="share of ∂L/∂x through the skip (%)",
       title="Where each block's input gradient comes from, at initialisation")
ax.legend()
_common.save_figure(fig, args, "skip_share.png")

# %% [markdown]
# **What was measured** (full run): in layer1.0 of ResNet-20, the first block, only 17% of ∂L/∂x comes back
# through the skip: its branch, fed the stem's output, dominates. Over all blocks the skip's share has a median of
# 45% in ResNet-20 (17% to 63%) and 72% in ResNet-56 (9% to 86%): the deeper the network, the more of each block's
# input gradient is the identity term. That fits the picture of the forward pass: every block adds its branch to the
# running sum, so the sum's scale grows with depth while each freshly initialised branch stays of about the same
# size, and a branch's own derivative ∂F/∂x becomes a small correction to the 1 of the skip. The two parts add up
# to the engine's ∂L/∂x bit for bit in every block (`split.parts_add_up()`).

# %% [markdown]
# The whole ResNet-20 has a few hundred ops. Drawn with `collapse=model, depth=2`, each block is one box (the graph
# was kept with `retain_graph=True` for this); opened up with `collapse=block`, one downsampling block shows its
# layers, its shortcut beside them (type A here: every other pixel, the new channels zero) and the residual add
# where the two paths join.

# %%
fig = viz.draw_graph(loss20, collapse=model20, depth=2, title="ResNet-20, one box per block")
_common.save_figure(fig, args, "resnet20_graph.png")
block = model20.layer2[0]
block_out = block(tr.Tensor(x.repeat(16, axis=1), requires_grad=True))     # 16 channels, as layer1 gives it
fig = viz.draw_graph(block_out, collapse=block, title="layer2.0: one box per layer")
_common.save_figure(fig, args, "block_graph.png")

# %% [markdown]
# ## Exercise 05.1 · Measure the ratio yourself
#
# Write `first_over_last(model, x, y)`: one forward pass of the batch `x` (a NumPy array), the
# cross-entropy against `y`, one backward, then ‖∂L/∂W‖ of the model's first `Conv2d` divided by its
# last one's. The engine builds a plain-20 and compares your number with its own measurement.

# %%
def first_over_last(model, x, y):
    ...                       # your code here


answer = None                 # replace by first_over_last once it is written
course.check_exercise("05.1", answer)
course.scoreboard()
