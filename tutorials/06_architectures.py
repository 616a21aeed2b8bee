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
# # 06 · The ResNet family: ResNet-18 to ResNet-152
#
# Five networks share one plan: a 7×7 stride-2 stem and a max-pool (224 → 56), four stages that halve
# the map and double the width, global average pooling and one fully connected layer. They differ in
# the block (basic for 18 and 34, bottleneck for 50, 101 and 152) and in the number of blocks per
# stage. §5 of the ResNet document tabulates them. Here the engine builds each one, runs a 224×224
# image through `summarize` and reports what it counts: parameters, multiply-accumulates, weighted
# layers and the shape after each stage, beside the document's table.
#
# **What you will learn**
# - the common plan of ResNet-18 to 152: stem, four stages that halve the map and double the width, pooling, fc;
# - how to count parameters and MACs of a whole network and read its stage shapes from `summarize`;
# - why ResNet-50 costs about as much as ResNet-34 although it has 16 more layers.
#
# **The claims tested here**
# - *The family's table*: the ResNet paper (He et al., 2016, Table 1) lists, for ImageNet at 224×224, the blocks per
#   stage ([2, 2, 2, 2], [3, 4, 6, 3], [3, 4, 6, 3], [3, 4, 23, 3], [3, 8, 36, 3]), basic blocks for 18 and 34
#   layers and bottlenecks for 50, 101 and 152, the output of each stage (56×56 down to 7×7) and the FLOPs (1.8,
#   3.6, 3.8, 7.6 and 11.3 ×10⁹).
# - *The course text's table* gives their parameters (11.7M, 21.8M, 25.6M, 44.5M, 60.2M), the stage shapes, and
#   ImageNet top-1 accuracies (69.8% … 78.3%), which we quote and do not measure.
#
# Run: `python tutorials/06_architectures.py [--quick] [--out DIR]`, or open it in Jupyter with
# jupytext (quick: `QUICK = True` in the first cell, or start Jupyter with `TINYRESNET_QUICK=1`).

# %%
QUICK = None   # None: follow TINYRESNET_QUICK=1 or --quick; True: the small fast run; False: the full run
import _common
import numpy as np

from tinyresnet import course, models, nn
from tinyresnet.summary import summarize

args = _common.setup("06_architectures", "ResNet-18 … 152: parameters, MACs and stage shapes", quick=QUICK)

DOCUMENT = {  # §5's table; "top1" is ImageNet accuracy as the document states it (not measured here)
    "resnet18": {"blocks": [2, 2, 2, 2], "block": "Basic", "layers": 18, "params_m": 11.7, "top1": 69.8},
    "resnet34": {"blocks": [3, 4, 6, 3], "block": "Basic", "layers": 34, "params_m": 21.8, "top1": 73.3},
    "resnet50": {"blocks": [3, 4, 6, 3], "block": "Bottleneck", "layers": 50, "params_m": 25.6, "top1": 76.1},
    "resnet101": {"blocks": [3, 4, 23, 3], "block": "Bottleneck", "layers": 101, "params_m": 44.5, "top1": 77.4},
    "resnet152": {"blocks": [3, 8, 36, 3], "block": "Bottleneck", "layers": 152, "params_m": 60.2, "top1": 78.3},
}
DOCUMENT_STAGES = {  # §5: the map after each stage (H×W×C)
    "Basic": ["56×56×64", "28×28×128", "14×14×256", "7×7×512"],
    "Bottleneck": ["56×56×256", "28×28×512", "14×14×1024", "7×7×2048"],
}
size = 224
print("(the ImageNet top-1 column is the document's; training these networks is beyond this tutorial)")


# %% [markdown]
# ## Build and measure
#
# **Predict.** ResNet-50 has 16 more layers than ResNet-34 and outputs 4× wider. How many times the MACs of
# ResNet-34 does it need? A number; within 15% counts.

# %%
my_prediction = None      # a number, e.g. 2
course.predict("06.resnet50_over_34_macs", my_prediction, rel_tolerance=0.15)
#
# "Layers" counts the convolutions and the fc layer on the main path (the 1×1 projection shortcuts are
# not counted, as in the paper's names).

# %%
def measure(name):
    nn.manual_seed(args.seed)
    model = models.get_model(name)
    s = summarize(model, (3, size, size), name=name)
    rows = {r.name: r for r in s.rows}
    stages = []
    for i in range(1, 5):
        _, c, h, w = rows[f"layer{i}"].output_shape
        stages.append(f"{h}×{w}×{c}")
    weighted = sum(1 for r in s.rows if r.type in ("Conv2d", "Linear") and "downsample" not in r.name)
    blocks = [len(getattr(model, f"layer{i}")) for i in range(1, 5)]
    block = type(model.layer1[0]).__name__.replace("BasicBlock", "Basic")
    parts = {"stem": ("conv1", "bn1"), "layer1": ("layer1.",), "layer2": ("layer2.",), "layer3": ("layer3.",),
             "layer4": ("layer4.",), "fc": ("fc",)}
    per_part = {part: {"params": sum(r.params for r in s.rows if r.name.startswith(prefixes)),
                       "macs": sum(r.macs for r in s.rows if r.name.startswith(prefixes))}
                for part, prefixes in parts.items()}
    return {"params": s.total_params, "macs": s.total_macs, "stages": stages, "layers": weighted,
            "blocks": blocks, "block": block, "stem": rows["maxpool"].output_shape, "per_part": per_part}


measured = {name: measure(name) for name in DOCUMENT}
header = f"{'model':<10} {'blocks':<14} {'block':<10} {'layers':>6} {'params (engine)':>16} {'doc':>6} " \
         f"{'GMACs':>6}  stages (engine)"
print(header)
print("-" * len(header) + "-" * 40)
for name, m in measured.items():
    d = DOCUMENT[name]
    print(f"{name:<10} {str(m['blocks']):<14} {m['block']:<10} {m['layers']:>6} {m['params']:>16,} "
          f"{d['params_m']:>5}M {m['macs'] / 1e9:>6.2f}  {' → '.join(m['stages'])}")

# %% [markdown]
# ## Against the document

# %%
agreements = {}
for name, m in measured.items():
    d = DOCUMENT[name]
    checks = {"blocks per stage": m["blocks"] == d["blocks"], "block type": m["block"] == d["block"],
              "weighted layers": m["layers"] == d["layers"],
              "parameters (to 0.1M)": round(m["params"] / 1e6, 1) == d["params_m"],
              "stage shapes": m["stages"] == DOCUMENT_STAGES[d["block"]]}
    agreements[name] = checks
    failed = [k for k, ok in checks.items() if not ok]
    print(f"{name}: " + ("all agree" if not failed else "differs in " + ", ".join(failed))
          + f"  (stem output {m['stem'][1:]}, {m['params']:,} parameters)")
results = {"input_size": size, "measured": measured, "document": DOCUMENT, "agreements": agreements}
mac_ratio = measured["resnet50"]["macs"] / measured["resnet34"]["macs"]
param_ratio = measured["resnet50"]["params"] / measured["resnet34"]["params"]
print(f"ResNet-50 has the stages of ResNet-34 ([3, 4, 6, 3]) with a 1×1-3×3-1×1 bottleneck for each pair of 3×3 "
      f"convolutions: 16 more layers and 4× wider outputs, for {param_ratio:.2f}× the parameters and "
      f"{mac_ratio:.2f}× the MACs")
results.update(resnet50_over_34_params=param_ratio, resnet50_over_34_macs=mac_ratio)
course.check_prediction("06.resnet50_over_34_macs", mac_ratio)

# %% [markdown]
# ## Figures

# %%
names = list(DOCUMENT)
labels = [n.replace("resnet", "ResNet-") for n in names]
fig, axes = _common.plt.subplots(1, 3, figsize=(13, 3.8))
where = np.arange(len(names))
axes[0].bar(where - 0.2, [measured[n]["params"] / 1e6 for n in names], 0.4, label="engine (counted)")
axes[0].bar(where + 0.2, [DOCUMENT[n]["params_m"] for n in names], 0.4, label="document's table")
depths = [n.replace("resnet", "") for n in names]
axes[0].set(title="parameters (millions)", xticks=where, xticklabels=depths, xlabel="ResNet-")
axes[0].legend()
axes[1].bar(where, [measured[n]["macs"] / 1e9 for n in names], color="tab:green")
for i, n in enumerate(names):
    axes[1].text(i, measured[n]["macs"] / 1e9, f"{measured[n]['macs'] / 1e9:.2f}", ha="center", va="bottom")
axes[1].set(title=f"multiply-accumulates per {size}×{size} image (G)", xticks=where, xticklabels=depths,
            xlabel="ResNet-")
for n, label in zip(names, labels):
    axes[2].scatter(measured[n]["macs"] / 1e9, DOCUMENT[n]["top1"], s=measured[n]["params"] / 2e5)
    axes[2].annotate(label, (measured[n]["macs"] / 1e9, DOCUMENT[n]["top1"]), textcoords="offset points",
                     xytext=(6, -10))
axes[2].set(title="ImageNet top-1 (document's, not measured)", xlabel="GMACs (engine); marker area ∝ parameters",
            ylabel="top-1 %")
axes[2].set_xlim(0, max(measured[n]["macs"] for n in names) / 1e9 * 1.2)
_common.save_figure(fig, args, "resnet_family.png")

fig, axes = _common.plt.subplots(1, 2, figsize=(12, 3.8))
parts = ["stem", "layer1", "layer2", "layer3", "layer4", "fc"]
for ax, key, unit, scale in ((axes[0], "params", "parameters (millions)", 1e6), (axes[1], "macs", "GMACs", 1e9)):
    bottom = np.zeros(len(names))
    for part in parts:
        values = np.array([measured[n]["per_part"][part][key] / scale for n in names])
        ax.bar(depths, values, bottom=bottom, label=part)
        bottom += values
    ax.set(title=f"{unit} per stage", xlabel="ResNet-")
axes[0].legend(title="stage", fontsize=7)
fig.suptitle("Per stage: a block of stage 4 holds the most weights; ResNet-101/152 add their extra blocks to stage 3")
_common.save_figure(fig, args, "per_stage.png")
_common.save_results(args, results)

# %% [markdown]
# **What was measured**: every entry of the document's table that can be counted agrees with the
# engine: blocks per stage, block types, 18/34/50/101/152 weighted layers, parameters
# (11,689,512 · 21,797,672 · 25,557,032 · 44,549,160 · 60,192,808, all rounding to the document's
# values) and the stage shapes. The multiply-accumulates per 224×224 image are 1.81, 3.66, 4.09, 7.80
# and 11.51 G. The accuracy column is quoted from the document, not measured.

# %% [markdown]
# ## Exercise 06.1 · Count ResNet-18's parameters by hand
#
# Write down ResNet-18's parameter count for a 100-class head (3-channel input): a 7×7 stem of 64
# channels with its BN, four stages of two basic blocks (64, 128, 256, 512 channels; each BN has γ
# and β; the first block of stages 2-4 has a 1×1 projection shortcut with a BN), and a 512 → 100
# fc layer with bias. The engine builds the network and compares (it must be exact).

# %%
answer = None                 # a number
course.check_exercise("06.1", answer)
course.scoreboard()
