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
# # 04 · The bottleneck block
#
# ResNet-50 and deeper replace the two 3×3 convolutions of a basic block by 1×1 (reduce 256 → 64),
# 3×3 (64 → 64) and 1×1 (expand 64 → 256). The ResNet document (§3, §3.5) compares the two on a
# 56×56×256 map: 1,179,648 against 69,632 convolution weights and 3,700M against 218.4M "FLOPs",
# about 17× fewer of both. We build both blocks with the engine's own `BasicBlock(256, 256)` and
# `Bottleneck(256, 64)`, count their parameters and multiply-accumulates layer by layer with
# `tinyresnet.summary.summarize` (a forward pass with hooks), and time a forward + backward pass of each.
# Does a 17× saving in arithmetic become a 17× saving in time on this engine?
#
# **What you will learn**
# - how a bottleneck block (1×1 reduce, 3×3, 1×1 expand) cuts the weights and the arithmetic of a block;
# - how to count parameters and multiply-accumulates (MACs) layer by layer with `tinyresnet.summary`;
# - why fewer MACs do not give the same factor in time: memory traffic and small matrix products.
#
# **The claims tested here**
# - *The bottleneck design*: the ResNet paper (He et al., 2016, §4.1 and Fig. 5) replaces the two 3×3 convolutions
#   of a block by 1×1, 3×3, 1×1 in ResNet-50/101/152, saying it keeps the time complexity of the block while making
#   the network deeper.
# - *The course text's counts* on a 56×56 map with 256 channels: 1,179,648 against 69,632 convolution weights, and
#   3,700M against 218.4M "FLOPs" (about 17× fewer of both); it also presents the saving as a speed-up.
#
# Run: `python tutorials/04_bottleneck.py [--quick] [--out DIR]`, or open it in Jupyter with
# jupytext (quick: `QUICK = True` in the first cell, or start Jupyter with `TINYRESNET_QUICK=1`).

# %%
QUICK = None   # None: follow TINYRESNET_QUICK=1 or --quick; True: the small fast run; False: the full run
import os
import time

import _common
import numpy as np

import tinyresnet as tr
from tinyresnet import course, nn
from tinyresnet.models import BasicBlock, Bottleneck
from tinyresnet.summary import summarize

args = _common.setup("04_bottleneck", "Basic block against bottleneck at 56×56×256: parameters, MACs, time",
                     quick=QUICK)
results = {}
nn.manual_seed(args.seed)
blocks = {"basic (3×3, 3×3)": BasicBlock(256, 256), "bottleneck (1×1, 3×3, 1×1)": Bottleneck(256, 64)}

# %% [markdown]
# ## Parameters and multiply-accumulates, layer by layer
#
# `summarize` counts a convolution's multiply-accumulates (MACs) as N·OC·OH·OW·C·KH·KW and gives
# BatchNorm, ReLU and the addition 0. The document's "FLOPs" are these MACs (one multiply and one add
# each; counted as two operations they would be twice as many).
#
# **Predict.** How many times fewer MACs does the bottleneck need than the basic block on 56×56×256? A number;
# within 10% counts.

# %%
my_prediction = None      # a number, e.g. 4
course.predict("04.mac_ratio", my_prediction, rel_tolerance=0.1)

# %%
summaries = {}
for name, block in blocks.items():
    s = summarize(block, (256, 56, 56), name=name)
    summaries[name] = s
    print(s.to_text())
    conv_params = sum(r.params for r in s.rows if r.type == "Conv2d")
    results[name] = {"conv_params": conv_params, "all_params": s.total_params, "macs": s.total_macs,
                     "layers": [{"name": r.name, "params": r.params, "macs": r.macs} for r in s.rows
                                if r.type == "Conv2d"]}
    print(f"→ {name}: {conv_params:,} convolution weights ({s.total_params:,} with the BatchNorm γ and β), "
          f"{s.total_macs:,} MACs\n")

basic, bottleneck = (results[n] for n in blocks)
param_ratio, mac_ratio = basic["conv_params"] / bottleneck["conv_params"], basic["macs"] / bottleneck["macs"]
print("the document: 1,179,648 against 69,632 weights; 3,700M against 218.4M FLOPs (= MACs)")
print(f"measured:     {basic['conv_params']:,} against {bottleneck['conv_params']:,} weights ({param_ratio:.2f}×); "
      f"{basic['macs'] / 1e6:,.1f}M against {bottleneck['macs'] / 1e6:,.1f}M MACs ({mac_ratio:.2f}×)")
results.update(param_ratio=param_ratio, mac_ratio=mac_ratio)
course.check_prediction("04.mac_ratio", mac_ratio)

# %% [markdown]
# ## Time: forward + backward on the engine
#
# One batch of `batch` random images, float32, training mode; each block is timed `repeats` times after
# one warm-up run and we keep the median. The engine runs every convolution as one matrix product
# (im2col for 3×3, a plain product for 1×1), on as many BLAS threads as OPENBLAS_NUM_THREADS allows.
#
# **Predict.** Will the bottleneck be faster in time by less than half the MAC ratio, by about the MAC ratio (half
# to 1.2 times it), or by more?

# %%
my_prediction = None      # one of the options
course.predict("04.time_speedup", my_prediction,
               options=["less than half the MAC ratio", "about the MAC ratio", "more than the MAC ratio"])

# %%
batch = 1 if args.quick else 4
repeats = 1 if args.quick else 5
side = 28 if args.quick else 56
rng = np.random.default_rng(args.seed)
x_data = rng.standard_normal((batch, 256, side, side)).astype(np.float32)
timings = {}
for name, block in blocks.items():
    block.train()
    runs = []
    for i in range(repeats + 1):
        x = tr.Tensor(x_data, requires_grad=True)
        block.zero_grad()
        start = time.perf_counter()
        out = block(x)
        forward = time.perf_counter() - start
        out.sum().backward()
        total = time.perf_counter() - start
        if i > 0:                            # run 0 is the warm-up
            runs.append((forward, total - forward))
    forward, backward = np.median(np.array(runs), axis=0)
    timings[name] = {"forward_s": float(forward), "backward_s": float(backward)}
    print(f"{name:<28} forward {1000 * forward:7.1f} ms   backward {1000 * backward:7.1f} ms   "
          f"(batch {batch}, {side}×{side}, median of {len(runs)})")
names = list(blocks)
total = {n: timings[n]["forward_s"] + timings[n]["backward_s"] for n in names}
speedup = total[names[0]] / total[names[1]]
threads = os.environ.get("OPENBLAS_NUM_THREADS", "default")
print(f"forward + backward: bottleneck {speedup:.1f}× faster than the basic block "
      f"(MACs: {mac_ratio:.1f}× fewer); BLAS threads: {threads}")
results.update(timings=timings, time_speedup=speedup, timing_batch=batch, timing_side=side, blas_threads=threads)
course.check_prediction("04.time_speedup", "less than half the MAC ratio" if speedup < mac_ratio / 2
                        else "about the MAC ratio" if speedup <= 1.2 * mac_ratio else "more than the MAC ratio")

# %% [markdown]
# ## Figures

# %%
fig, axes = _common.plt.subplots(1, 3, figsize=(12, 3.8))
colors = ["tab:orange", "tab:blue"]
for ax, key, title in ((axes[0], "conv_params", "convolution weights (thousands)"),
                       (axes[1], "macs", "MACs per image (millions)")):
    scale = 1e3 if key == "conv_params" else 1e6
    values = [results[n][key] / scale for n in names]
    ax.bar(["basic", "bottleneck"], values, color=colors)
    for i, v in enumerate(values):
        ax.text(i, v, f"{v:,.1f}", ha="center", va="bottom")
    ax.set(title=title)
width = 0.35
fwd = [1000 * timings[n]["forward_s"] for n in names]
bwd = [1000 * timings[n]["backward_s"] for n in names]
axes[2].bar(["basic", "bottleneck"], fwd, color=colors, label="forward")
axes[2].bar(["basic", "bottleneck"], bwd, bottom=fwd, color=colors, alpha=0.45, label="backward (lighter)")
axes[2].set(title=f"time, batch {batch} at {side}×{side} ({speedup:.1f}× apart)", ylabel="ms")
axes[2].legend()
fig.suptitle(f"Basic block against bottleneck on a 56×56×256 map: {param_ratio:.1f}× fewer weights, "
             f"{mac_ratio:.1f}× fewer MACs")
_common.save_figure(fig, args, "basic_vs_bottleneck.png")

fig, ax = _common.plt.subplots(figsize=(7, 3.4))
labels, macs, colors_by_layer = [], [], []
for name, color in zip(names, colors):
    for layer in results[name]["layers"]:
        labels.append(("basic " if color == "tab:orange" else "bottleneck ") + layer["name"])
        macs.append(layer["macs"] / 1e6)
        colors_by_layer.append(color)
ax.barh(labels[::-1], macs[::-1], color=colors_by_layer[::-1])
for i, v in enumerate(macs[::-1]):
    ax.text(v, i, f" {v:,.1f}M", va="center", fontsize=8)
ax.set(xlabel="million multiply-accumulates per image", title="Where the arithmetic goes, per convolution")
_common.save_figure(fig, args, "macs_per_layer.png")
_common.save_results(args, results)

# %% [markdown]
# **What was measured** (`output.txt`): the document's counts are right: 1,179,648 against 69,632 weights
# (16.9×), 3,699,376,128 against 218,365,952 MACs (16.9×), which the document rounds to 3,700M and
# 218.4M. The BatchNorm layers add 1,024 and 768 parameters. In time, the bottleneck wins by less than
# the MAC ratio: its 256-channel BatchNorm, ReLU and addition cost as much memory traffic as the basic
# block's, and 1×1 convolutions are small matrix products that run below peak speed.

# %% [markdown]
# ## Exercise 04.1 · The MAC ratio by hand
#
# Compute, with a pencil or a few lines of Python, the basic block's MACs divided by the bottleneck's
# on a 56×56 map with 256 channels (a convolution costs H·W·C_in·C_out·k·k MACs; BN, ReLU and the add
# count 0). The engine counts both blocks with `summarize` and grades your number (0.1% tolerance).

# %%
answer = None                 # a number
course.check_exercise("04.1", answer)

# %% [markdown]
# ## Exercise 04.2 · Measure the bottleneck's speed-up yourself
#
# Write `time_block(block, x)` that returns the seconds of ONE forward + backward pass of `block` on
# `x` (clear the gradients first, sum the output, call backward). The engine checks that it returns a
# plausible time and that the gradients were computed. Then use it on `blocks` above with a few
# repeats and compare your speed-up with the MAC ratio: how far apart are they on your machine?

# %%
def time_block(block, x):
    ...                       # your code here


answer = None                 # replace by time_block once it is written
course.check_exercise("04.2", answer)
course.scoreboard()
