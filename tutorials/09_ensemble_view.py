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
# # 09 · The ensemble view: a lesion study
#
# Unrolled, a network of n residual blocks is a sum over 2ⁿ paths from the input to the output: each
# block is either taken or skipped (§8 of the ResNet document). Veit, Wilber and Belongie (2016,
# "Residual networks behave like ensembles of relatively shallow networks") tested what that implies:
# delete one block from a trained ResNet, so that half of the paths disappear, and the test error
# barely moves; delete one layer from a trained plain network, where every input goes through every
# layer, and it collapses to chance.
#
# We repeat their experiment on the digits:
#
# 1. train a plain-20 network and ResNet-20 (and, in the full run, ResNet-56) with the same recipe
#    (tutorial 01's; the ResNets with `zero_init_residual`, which tutorial 01 found ResNet-56 needs to
#    train well in this short budget);
# 2. delete one block at a time and measure the test accuracy. Deleting a residual block leaves its
#    shortcut: the block returns relu(shortcut(x)), which is x itself for the blocks that keep the
#    shape. Deleting a plain block means replacing it by the identity, which only works where the block
#    keeps the shape (the first blocks of stages 2 and 3 change it, so they cannot be removed);
# 3. delete k blocks at random at once, for growing k (Veit et al.'s Figure 5a).
#
# The networks stay in evaluation mode throughout: the BN layers keep the statistics they learned with
# every block in place.
#
# **What you will learn**
# - the unrolled view of a ResNet: 2ⁿ paths through n blocks, of every length from 0 to n;
# - how to run a lesion study with forward hooks that replace a block's output;
# - why deleting a block hurts a ResNet little and a plain network completely.
#
# **The claims tested here**
# - *Residual networks behave like ensembles of shallow paths* (Veit, Wilber and Belongie, 2016, Fig. 3 and Fig.
#   5a): deleting one block of a trained ResNet barely changes its test error, deleting one layer of a trained plain
#   network (VGG) brings it to chance, and deleting several blocks degrades a ResNet smoothly.
# - *The course text's unrolled view*: n residual blocks give 2ⁿ paths from input to output, since each block is
#   either passed through or skipped.
#
# Run: `python tutorials/09_ensemble_view.py [--quick] [--out DIR]`, or open it in Jupyter with
# jupytext (quick: `QUICK = True` in the first cell, or start Jupyter with `TINYRESNET_QUICK=1`).

# %%
QUICK = None   # None: follow TINYRESNET_QUICK=1 or --quick; True: the small fast run; False: the full run
import _common
import numpy as np

from tinyresnet import course, models, nn
from tinyresnet import functional as F
from tinyresnet.data import DataLoader
from tinyresnet.models import BasicBlock
from tinyresnet.training.metrics import evaluate

args = _common.setup("09_ensemble_view", "Lesion study: delete blocks from trained plain and residual networks",
                     quick=QUICK)
train, test, normalize = _common.digits(quick=args.quick, train_size=192 if args.quick else None)
epochs = 2 if args.quick else 16
networks = ("plain20", "resnet20") if args.quick else ("plain20", "resnet20", "resnet56")
test_loader = DataLoader(test, 500, transform=normalize, prefetch=0)
print(f"{len(train)} training and {len(test)} test digits; {epochs} epochs per network")

# %% [markdown]
# ## 1. Train

# %%
trained = {}
for name in networks:
    nn.manual_seed(args.seed)
    options = {"zero_init_residual": True} if name.startswith("resnet") else {}
    model = models.get_model(name, num_classes=10, in_channels=1, **options)
    _common.train(model, train, test, normalize, epochs, seed=args.seed, label=name, measure_train=False)
    trained[name] = model.eval()


# %% [markdown]
# ## 2. Delete one block at a time
#
# A forward hook that returns a value replaces the module's output; that is how we delete a block
# without touching the model: the hook ignores what the block computed and returns what the block
# would return without its residual branch (or, for a plain block, its input).
#
# **Predict.** Deleting one block of the trained plain-20, what test accuracy (in %, averaged over the blocks that
# can be deleted) will it keep? Within 15 points counts.

# %%
my_prediction = None      # a number in %, e.g. 80
course.predict("09.plain20_one_deleted", my_prediction, tolerance=15)

# %% [markdown]
# **Predict.** And ResNet-20: how many points of test accuracy will it lose on average when one shape-keeping block
# is deleted? Within 5 points counts.

# %%
my_prediction = None      # a number of points, e.g. 10
course.predict("09.resnet20_drop", my_prediction, tolerance=5)

# %%
def blocks_of(model):
    return [(name, m) for name, m in model.named_modules() if isinstance(m, BasicBlock)]


def deletable(block):
    """A residual block can always lose its branch; a plain block only if it keeps the shape."""
    return block.has_skip or (block.stride == 1 and block.conv1.in_channels == block.conv2.out_channels)


def without_branch(block, inputs, output):
    x = inputs[0]
    if not block.has_skip:
        return x                                                  # a plain block becomes the identity
    return F.relu(x if block.downsample is None else block.downsample(x))   # only the shortcut is left


def accuracy_without(model, names):
    """Test accuracy with the named blocks deleted (the model is left unchanged)."""
    modules = dict(model.named_modules())
    handles = [modules[n].register_forward_hook(without_branch) for n in names]
    try:
        return evaluate(model, test_loader)["accuracy"]
    finally:
        for h in handles:
            h.remove()


single = {}
for name, model in trained.items():
    full = accuracy_without(model, [])
    rows = []
    for block_name, block in blocks_of(model):
        if deletable(block):
            rows.append({"block": block_name, "accuracy": accuracy_without(model, [block_name]),
                         "changes_shape": block.downsample is not None})
        else:
            rows.append({"block": block_name, "accuracy": None, "changes_shape": True})
    single[name] = {"full_accuracy": full, "rows": rows}
    measured = [r for r in rows if r["accuracy"] is not None]
    keep_shape = [r["accuracy"] for r in measured if not r["changes_shape"]]
    print(f"\n{name}: test accuracy {100 * full:.2f}% with every block")
    for r in rows:
        acc = "cannot be deleted (changes the shape)" if r["accuracy"] is None else f"{100 * r['accuracy']:6.2f}%"
        kept_shortcut = r["changes_shape"] and r["accuracy"] is not None
        note = "  (downsampling block: its option-A shortcut stays)" if kept_shortcut else ""
        print(f"    without {r['block']:<10} {acc}{note}")
    single[name]["mean_drop_shape_keeping"] = float(full - np.mean(keep_shape))
    print(f"    deleting one shape-keeping block costs {100 * (full - np.mean(keep_shape)):.2f} points on average "
          f"(worst {100 * (full - min(keep_shape)):.2f})")

plain_kept = [r["accuracy"] for r in single["plain20"]["rows"] if r["accuracy"] is not None]
course.check_prediction("09.plain20_one_deleted", 100 * float(np.mean(plain_kept)))
course.check_prediction("09.resnet20_drop", 100 * single["resnet20"]["mean_drop_shape_keeping"])

# %% [markdown]
# ## 3. Delete k blocks at once
#
# For each k we draw up to `samples` random sets of k shape-keeping blocks and average the accuracy.

# %%
rng = np.random.default_rng(args.seed)
samples = 3 if args.quick else 12
multi = {}
for name, model in trained.items():
    candidates = [n for n, b in blocks_of(model) if deletable(b) and b.downsample is None]
    curve = []
    for k in range(0, min(len(candidates), 12 if not args.quick else 3) + 1):
        accs = [accuracy_without(model, list(rng.choice(candidates, size=k, replace=False)))
                for _ in range(1 if k == 0 else samples)]
        curve.append({"k": k, "mean": float(np.mean(accs)), "min": float(np.min(accs)), "max": float(np.max(accs))})
    multi[name] = curve
    print(f"{name}: mean accuracy with k random blocks deleted: "
          + ", ".join(f"k={c['k']} {100 * c['mean']:.1f}%" for c in curve))
_common.save_results(args, {"epochs": epochs, "single": single, "multi": multi})

# %% [markdown]
# ## Figures

# %%
fig, axes = _common.plt.subplots(1, len(trained), figsize=(4.6 * len(trained), 3.8), sharey=True)
for ax, (name, result) in zip(np.atleast_1d(axes), single.items()):
    rows = result["rows"]
    colors = ["tab:gray" if r["accuracy"] is None else "tab:orange" if r["changes_shape"] else "tab:blue"
              for r in rows]
    ax.bar(range(len(rows)), [100 * (r["accuracy"] or 0) for r in rows], color=colors)
    ax.axhline(100 * result["full_accuracy"], color="black", lw=1,
               label=f"no deletion ({100 * result['full_accuracy']:.1f}%)")
    ax.axhline(10, color="tab:red", lw=1, ls=":", label="chance (10%)")
    for i, r in enumerate(rows):
        if r["accuracy"] is None:
            ax.text(i, 2, "n/a", ha="center", fontsize=7, rotation=90)
    ax.set(title=f"{name}: delete one block", xlabel="block (orange: downsampling)", ylim=(0, 122),
           yticks=range(0, 101, 20))
    ax.legend(loc="upper center", ncol=2, fontsize=7)     # above the bars, which stop at 100%
np.atleast_1d(axes)[0].set_ylabel("test accuracy (%)")
_common.save_figure(fig, args, "delete_one_block.png")

fig, ax = _common.plt.subplots(figsize=(5.5, 3.8))
for name, curve in multi.items():
    ks = [c["k"] for c in curve]
    ax.plot(ks, [100 * c["mean"] for c in curve], "o-", label=name)
    ax.fill_between(ks, [100 * c["min"] for c in curve], [100 * c["max"] for c in curve], alpha=0.15)
ax.axhline(10, color="tab:red", lw=1, ls=":", label="chance")
ax.set(xlabel="number of blocks deleted at random", ylabel="test accuracy (%)", ylim=(0, 100),
       title="Deleting several blocks (mean, min–max band)")
ax.legend()
_common.save_figure(fig, args, "delete_k_blocks.png")

# %% [markdown]
# **What the full run measured** (seed 0, 16 epochs; `docs/results/09_ensemble_view/`):
#
# * plain-20 (97.2% test accuracy): deleting any one of its 7 removable blocks leaves 7.0% to 12.5%,
#   chance level. Every input passes through every layer, and no layer can be left out.
# * ResNet-20 (98.3%): deleting one shape-keeping block costs 1.95 points on average (worst 4.7);
#   deleting the first block of stage 2 (whose option-A shortcut subsamples and pads) costs the most,
#   9.8 points.
# * ResNet-56 (96.4%): deleting one block costs 0.03 points on average; the worst single deletion costs
#   3.3 points and several deletions *raise* the accuracy by a few images.
# * Deleting k blocks at random, the residual networks degrade smoothly (ResNet-56: 76.9% on average
#   with 12 of its 25 identity blocks gone; ResNet-20: 46.2% with 7 of 7), where plain-20 falls to
#   chance at k = 1.
#
# This is what Veit et al. found on CIFAR-10 and ImageNet: a trained ResNet behaves like a collection of
# paths of many lengths, none of which it depends on alone.

# %% [markdown]
# ## Exercise 09.1 · Count the paths
#
# Write `paths_of_length(n, k)`: of the 2ⁿ paths through n residual blocks (each block taken or
# skipped), how many go through exactly k blocks? The engine checks a few values and that they add
# up to 2²⁷ for ResNet-56's 27 blocks. Which path length is the most common there?

# %%
def paths_of_length(n, k):
    ...                       # your code here


answer = None                 # replace by paths_of_length once it is written
course.check_exercise("09.1", answer)
course.scoreboard()
