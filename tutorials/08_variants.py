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
# # 08 · Variants: ResNeXt, Wide ResNet, DenseNet
#
# §10 of the ResNet document sketches three descendants:
#
# * **ResNeXt** splits the bottleneck's 3×3 convolution into groups (cardinality 32 for ResNeXt-50
#   32×4d): `Conv2d(..., groups=g)` connects each output channel to only C/g input channels, so a
#   wider bottleneck costs what a narrower ordinary one does.
# * **Wide ResNet** uses fewer, wider blocks (WRN-28-10: 28 layers, 10× the channels of the CIFAR
#   ResNets), with BN and ReLU before each convolution.
# * **DenseNet** concatenates instead of adding: each layer receives all earlier feature maps of its
#   block, `cat([x0, x1, ..., x_k-1])`, and adds `growth_rate` new channels.
#
# Part 1 counts parameters and multiply-accumulates of the full-size models against their ResNet
# counterparts. Part 2 trains small versions of each on the digits (the full-size ones are far too big
# for 1,438 images of 8×8 and for a CPU budget of minutes) with the same recipe and budget.
#
# **What you will learn**
# - what grouped convolutions (ResNeXt), width (Wide ResNet) and concatenation (DenseNet) change in a block;
# - how to compare architectures by parameters, MACs and time, not by one name;
# - why a short run on one seed cannot rank architectures whose errors differ by a few images.
#
# **The claims tested here**
# - *ResNeXt* (Xie et al., 2017, Table 1): ResNeXt-50 32×4d splits the bottleneck's 3×3 convolution into 32 groups
#   and matches ResNet-50's budget: 25.0M against 25.5M parameters, 4.2 against 4.1 GFLOPs.
# - *Wide ResNet* (Zagoruyko and Komodakis, 2016, Table 5): WRN-28-10, 28 layers 10× wider than the CIFAR ResNets,
#   has 36.5M parameters.
# - *DenseNet* (Huang et al., 2017): each layer receives the concatenation of all earlier maps of its block;
#   DenseNet-121 reaches ResNet-50's accuracy with far fewer parameters (about 8M).
#
# Run: `python tutorials/08_variants.py [--quick] [--out DIR]`, or open it in Jupyter with
# jupytext (quick: `QUICK = True` in the first cell, or start Jupyter with `TINYRESNET_QUICK=1`).

# %%
QUICK = None   # None: follow TINYRESNET_QUICK=1 or --quick; True: the small fast run; False: the full run
import _common
import numpy as np

import tinyresnet as tr
from tinyresnet import course, models, nn
from tinyresnet import functional as F
from tinyresnet.models import Bottleneck, DenseNet, ResNet, WideResNet
from tinyresnet.summary import summarize

args = _common.setup("08_variants", "ResNeXt, Wide ResNet and DenseNet: size, cost and a short training run",
                     quick=QUICK)
results = {}

# %% [markdown]
# ## The three ideas in one line each, on the engine
#
# A grouped convolution is the ungrouped one with the cross-group weights forced to zero; a dense layer's
# input is a concatenation along the channels.

# %%
rng = np.random.default_rng(args.seed)
x = tr.tensor(rng.standard_normal((1, 8, 5, 5)))
w = rng.standard_normal((8, 2, 3, 3))                         # 4 groups: each output sees 8/4 = 2 input channels
grouped = F.conv2d(x, tr.tensor(w), padding=1, groups=4).numpy()
dense_w = np.zeros((8, 8, 3, 3))                               # the same kernel, written as an ungrouped one
for g in range(4):
    dense_w[2 * g:2 * g + 2, 2 * g:2 * g + 2] = w[2 * g:2 * g + 2]
ungrouped = F.conv2d(x, tr.tensor(dense_w), padding=1).numpy()
print(f"grouped conv (groups=4) vs block-diagonal ungrouped conv: max difference "
      f"{np.abs(grouped - ungrouped).max():.1e}; weights {w.size} against {dense_w.size}")
features = [tr.tensor(rng.standard_normal((1, 4, 5, 5)))]
for k in range(3):                                            # three dense layers, growth rate 2
    new = F.relu(F.conv2d(tr.cat(features, dim=1), tr.tensor(rng.standard_normal((2, 4 + 2 * k, 3, 3))), padding=1))
    features.append(new)
    print(f"dense layer {k + 1}: input {4 + 2 * k} channels (the block input and {k} earlier outputs) -> adds 2")
print(f"the block's output: cat of all = {tr.cat(features, dim=1).shape[1]} channels")
results["grouped_vs_blockdiagonal"] = float(np.abs(grouped - ungrouped).max())

# %% [markdown]
# ## Part 1: the full-size models
#
# **Predict.** How many times ResNet-50's parameters does DenseNet-121 have (0.5 would be half)? A number; within a
# factor of 1.5 counts.

# %%
my_prediction = None      # a number, e.g. 0.8
course.predict("08.densenet_over_resnet50", my_prediction, factor=1.5)

# %%
PAIRS = [("resnet50", "resnext50_32x4d", (3, 224, 224)), ("resnet110", "wide_resnet28_10", (3, 32, 32)),
         ("resnet50", "densenet121", (3, 224, 224))]
sizes = {}
for base, variant, shape in PAIRS:
    for name in (base, variant):
        key = (name, shape)
        if key not in sizes:
            nn.manual_seed(args.seed)
            s = summarize(models.get_model(name), shape, name=name)
            sizes[key] = {"params": s.total_params, "macs": s.total_macs}
    b, v = sizes[(base, shape)], sizes[(variant, shape)]
    print(f"{variant:<18} {v['params']:>12,} parameters {v['macs'] / 1e9:>6.2f} GMACs   against {base:<10} "
          f"{b['params']:>12,} {b['macs'] / 1e9:>6.2f} GMACs   (input {shape[1]}×{shape[2]}; "
          f"×{v['params'] / b['params']:.2f} parameters, ×{v['macs'] / b['macs']:.2f} MACs)")
results["full_size"] = {f"{n}@{s[1]}": v for (n, s), v in sizes.items()}
course.check_prediction("08.densenet_over_resnet50",
                        sizes[("densenet121", (3, 224, 224))]["params"] / sizes[("resnet50", (3, 224, 224))]["params"])

# %% [markdown]
# ## Part 2: small versions, trained on the digits
#
# Five networks of 0.1 to 0.7 million parameters, each 20 layers deep or less, for 1-channel 8×8 images:
#
# | name | what it is |
# | --- | --- |
# | ResNet-20 | the CIFAR ResNet: basic blocks, 16/32/64 channels |
# | bottleneck ResNet-20 | 3 stages of 2 bottleneck blocks (1×1, 3×3, 1×1), bottleneck 16/32/64, outputs 64/128/256
# |
# | ResNeXt-20 (8×16d) | the same with the 3×3 twice as wide (32/64/128) but split in 8 groups |
# | WRN-16-2 | a Wide ResNet of 16 layers, twice the CIFAR widths (32/64/128), pre-activation blocks |
# | DenseNet (k=12) | 3 dense blocks of 4 layers (BN-ReLU-1×1-BN-ReLU-3×3), growth 12, transitions halve the width |
#
# All use the same recipe as tutorial 01 (SGD, lr 0.1 with the step schedule, one-pixel shifts).
#
# **Predict.** Which of the five small networks will take the longest to train (the same epochs for all)?

# %%
SMALL_NAMES = ("ResNet-20", "bottleneck ResNet-20", "ResNeXt-20 (8×16d)", "WRN-16-2", "DenseNet (k=12)")
my_prediction = None      # one of SMALL_NAMES
course.predict("08.slowest_small", my_prediction, options=list(SMALL_NAMES))

# %%
SMALL = {
    "ResNet-20": lambda: models.resnet20(num_classes=10, in_channels=1),
    "bottleneck ResNet-20": lambda: ResNet(Bottleneck, [2, 2, 2], num_classes=10, in_channels=1, stem="cifar",
                                           widths=(16, 32, 64)),
    "ResNeXt-20 (8×16d)": lambda: ResNet(Bottleneck, [2, 2, 2], num_classes=10, in_channels=1, stem="cifar",
                                         widths=(16, 32, 64), groups=8, width_per_group=16),
    "WRN-16-2": lambda: WideResNet(16, 2, num_classes=10, in_channels=1),
    "DenseNet (k=12)": lambda: DenseNet(12, (4, 4, 4), 24, 4, num_classes=10, in_channels=1, stem="cifar"),
}
train, test, normalize = _common.digits(quick=args.quick, train_size=192 if args.quick else None)
epochs = 2 if args.quick else 10
print(f"{len(train)} training and {len(test)} test digits, {epochs} epochs each")
small = {}
for name, build in SMALL.items():
    nn.manual_seed(args.seed)
    model = build()
    s = summarize(model, (1, 8, 8), name=name)
    history = _common.train(model, train, test, normalize, epochs, seed=args.seed, label=name[:14], measure_train=False)
    _, test_err = _common.column(history, "test_err")
    small[name] = {"params": s.total_params, "macs": s.total_macs, "final_test_err": test_err[-1],
                   "best_test_err": min(test_err), "final_loss": _common.last(history, "train_loss"),
                   "time_s": history[-1]["time_s"], "history": history}
print(f"\n{'network':<22} {'parameters':>11} {'MACs/image':>11} {'final loss':>11} {'final test error':>17} "
      f"{'best':>7} {'time':>6}")
for name, r in small.items():
    print(f"{name:<22} {r['params']:>11,} {r['macs']:>11,} {r['final_loss']:>11.4f} "
          f"{100 * r['final_test_err']:>16.2f}% {100 * r['best_test_err']:>6.2f}% {r['time_s']:>5.0f}s")
results["small"] = small
course.check_prediction("08.slowest_small", max(small, key=lambda n: small[n]["time_s"]))
_common.save_results(args, results)

# %% [markdown]
# ## Figures

# %%
fig, axes = _common.plt.subplots(1, 3, figsize=(14, 3.8))
names = list(small)
for name in names:
    e, te = _common.column(small[name]["history"], "test_err")
    _, loss = _common.column(small[name]["history"], "train_loss")
    axes[0].plot(e, loss, "o-", ms=3, label=name)
    axes[1].plot(e, 100 * np.array(te), "o-", ms=3, label=name)
axes[0].set(title="training loss", xlabel="epoch", yscale="log")
axes[1].set(title="test error (%)", xlabel="epoch", yscale="log")
axes[0].legend()
for i, name in enumerate(names):
    r = small[name]
    axes[2].scatter(r["params"] / 1e3, 100 * r["final_test_err"], s=r["macs"] / 5e4)
    axes[2].annotate(name, (r["params"] / 1e3, 100 * r["final_test_err"]), textcoords="offset points",
                     xytext=(6, 5 if i % 2 == 0 else -11), fontsize=7)
axes[2].set(title="final test error vs size (marker area ∝ MACs)", xlabel="thousand parameters",
            ylabel="test error (%)")
fig.suptitle(f"Small variants on the digits, {epochs} epochs each, same recipe")
_common.save_figure(fig, args, "small_variants_training.png")

fig, ax = _common.plt.subplots(figsize=(7.5, 3.6))
labels = [f"{n}\n@{s[1]}×{s[2]}" for (n, s) in sizes]
for offset, key, scale, label in ((-0.2, "params", 1e6, "parameters (M)"), (0.2, "macs", 1e9, "GMACs per image")):
    values = [v[key] / scale for v in sizes.values()]
    ax.bar(np.arange(len(labels)) + offset, values, 0.4, label=label)
    for i, v in enumerate(values):
        ax.text(i + offset, v, f"{v:.1f}", ha="center", va="bottom", fontsize=7)
ax.set_xticks(np.arange(len(labels)))
ax.set_xticklabels(labels, fontsize=7)
ax.set(title="Full-size variants and their ResNet counterparts (counted by the engine)")
ax.legend()
_common.save_figure(fig, args, "full_size_variants.png")

# %% [markdown]
# **What the committed full run measured** (`docs/results/08_variants/`):
#
# * Full size: ResNeXt-50 32×4d has 25.0M parameters and 4.23 GMACs against ResNet-50's 25.6M and
#   4.09 G (the same budget, as its authors intended); WRN-28-10 has 36.5M parameters and 5.24 GMACs per
#   32×32 image, 21× ResNet-110's; DenseNet-121 has 8.0M parameters and 2.83 GMACs, 0.31× and 0.69×
#   ResNet-50's.
# * Small versions, 10 epochs on the digits, final test error: ResNet-20 2.23%, bottleneck ResNet-20
#   3.90%, ResNeXt-20 (8×16d) 2.51%, WRN-16-2 1.95%, DenseNet (k=12) 3.90%. Between the best and the
#   worst lie 7 of 359 images: one seed and a short budget cannot rank these architectures. The clearer
#   differences are in the training loss (WRN-16-2, with 2.6× the parameters of ResNet-20, fits fastest:
#   0.025 against 0.048) and in the cost (DenseNet's many small concatenations and convolutions make it
#   the slowest per epoch although it has the fewest parameters).

# %% [markdown]
# ## Exercise 08.1 · The weights of a grouped convolution
#
# How many weights does `Conv2d(128, 128, 3, padding=1, groups=32, bias=False)` hold? (Each output
# channel is connected to the input channels of its own group only.) The engine builds the layer
# and compares.

# %%
answer = None                 # a number
course.check_exercise("08.1", answer)
course.scoreboard()
