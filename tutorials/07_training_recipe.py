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
# # 07 · The training recipe, one ingredient at a time
#
# §9 and §11 of the ResNet document give a recipe: SGD with momentum 0.9, learning rate 0.1 divided by
# 10 at fixed epochs, weight decay 1e-4, data augmentation, He initialisation, and the last BN of
# every block initialised to zero ("don't use Adam", "don't skip data augmentation"). We train
# ResNet-20 on the digits with that recipe, then change one ingredient at a time:
#
# | run | what changes |
# | --- | --- |
# | baseline | SGD (lr 0.1, momentum 0.9, weight decay 1e-4), step schedule, 1-pixel shifts, He init, zero-init BN |
# | Adam | Adam (lr 1e-3, the usual default; same weight decay and step schedule) instead of SGD |
# | no augmentation | the training images are used as they are |
# | naive init | every convolution drawn from N(0, 0.01²), the fixed small Gaussian used before He et al. (2015) |
# | no zero-init | the last BN γ of each block starts at 1, as in every other BN |
#
# Each run is short and the test set has only 359 images (one image is 0.28 points), so we train the
# baseline with four seeds (two in the quick run): the spread of those four runs is the noise against
# which the other differences should be read. The variants use the first seed.
#
# **What you will learn**
# - the ResNet training recipe, ingredient by ingredient, and how to run a controlled ablation;
# - why several seeds are needed before calling a difference real (the noise floor of a small test set);
# - how a learning-rate schedule with warm-up is written (the paper's ResNet-110 recipe).
#
# **The claims tested here**
# - *The recipe*: the ResNet paper (He et al., 2016, §3.4 and §4.2) trains with SGD, momentum 0.9, weight decay
#   1e-4, learning rate 0.1 divided by 10 at fixed points (for CIFAR: at 32k and 48k of 64k iterations), random
#   crops and flips, He initialisation (He et al., 2015) and BN after every convolution; for ResNet-110 it warms up
#   at 0.01 until the training error is below about 80% (about 400 iterations).
# - *The course text's advice*: prefer SGD over Adam, never skip data augmentation, and start the last BN of every
#   block at γ = 0 (Goyal et al., 2017).
#
# Run: `python tutorials/07_training_recipe.py [--quick] [--out DIR]`, or open it in Jupyter with
# jupytext (quick: `QUICK = True` in the first cell, or start Jupyter with `TINYRESNET_QUICK=1`).

# %%
QUICK = None   # None: follow TINYRESNET_QUICK=1 or --quick; True: the small fast run; False: the full run
import _common
import numpy as np

from tinyresnet import course, models, nn
from tinyresnet.nn import Conv2d, init
from tinyresnet.optim import Adam

args = _common.setup("07_training_recipe", "SGD vs Adam, augmentation, initialisation, zero-init BN: short runs",
                     quick=QUICK)
train, test, normalize = _common.digits(quick=args.quick, train_size=192 if args.quick else None)
epochs = 2 if args.quick else 15
print(f"ResNet-20 on {len(train)} training and {len(test)} test digits, {epochs} epochs per run, batch 64")

BASELINE_SEEDS = [args.seed + k for k in range(2 if args.quick else 4)]
RUNS = {
    **{f"baseline, seed {s}": {"seed": s} for s in BASELINE_SEEDS},
    "Adam": {"optimizer": "adam"},
    "no augmentation": {"augment": False},
    "naive init": {"init": "naive"},
    "no zero-init": {"zero_init": False},
}


# %% [markdown]
# ## One function, five variations
#
# **Predict.** Of the four changes (Adam, no augmentation, naive init, no zero-init), how many will end with a final
# test error outside the range of the baseline's seeds? A whole number from 0 to 4.

# %%
my_prediction = None      # a number, e.g. 3
course.predict("07.changes_outside_noise", my_prediction, tolerance=0.5)

# %%
def run(label, optimizer="sgd", augment=True, init_mode="he", zero_init=True, seed=args.seed):
    nn.manual_seed(seed)
    model = models.resnet20(num_classes=10, in_channels=1, zero_init_residual=zero_init)   # He init (fan_out)
    if init_mode == "naive":
        for m in model.modules():
            if isinstance(m, Conv2d):
                init.normal_(m.weight, 0.0, 0.01)
    if optimizer == "adam":
        opt = Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    else:
        opt = _common.paper_sgd(model)
    return _common.train(model, train, test, normalize, epochs, optimizer=opt,
                         scheduler=_common.step_schedule(opt, epochs), augment=augment, seed=seed, label=label)


histories = {}
for label, options in RUNS.items():
    options = dict(options)
    if "init" in options:
        options["init_mode"] = options.pop("init")
    print(f"{label}:")
    histories[label] = run(label.replace("baseline, seed", "base s")[:14], **options)
baselines = [f"baseline, seed {s}" for s in BASELINE_SEEDS]
first = baselines[0]

# %% [markdown]
# ## Results

# %%
summary = {}
print(f"\n{'run':<22} {'final test error':>17} {'best test error':>16} {'final train error':>18} {'final loss':>11}")
for label, h in histories.items():
    _, test_err = _common.column(h, "test_err")
    summary[label] = {"final_test_err": _common.last(h, "test_err"), "best_test_err": min(test_err),
                      "final_train_err": _common.last(h, "train_err"), "final_loss": _common.last(h, "train_loss")}
    s = summary[label]
    print(f"{label:<22} {100 * s['final_test_err']:>16.2f}% {100 * s['best_test_err']:>15.2f}% "
          f"{100 * s['final_train_err']:>17.2f}% {s['final_loss']:>11.4f}")
n_test = len(test)
wrong = {label: round(summary[label]["final_test_err"] * n_test) for label in summary}   # misclassified images
low, high = min(wrong[b] for b in baselines), max(wrong[b] for b in baselines)
print(f"baseline over {len(baselines)} seeds: {low} to {high} of {n_test} test images wrong "
      f"({100 * low / n_test:.2f}% to {100 * high / n_test:.2f}%)")
verdicts = {}
for label in ("Adam", "no augmentation", "naive init", "no zero-init"):
    inside = low <= wrong[label] <= high
    verdicts[label] = "inside" if inside else "below" if wrong[label] < low else "above"
    print(f"{label:<16} {wrong[label]:>3} wrong ({100 * wrong[label] / n_test:.2f}%): "
          + ("inside the baseline's seed range" if inside else f"{verdicts[label]} the baseline's seed range"))
course.check_prediction("07.changes_outside_noise", sum(v != "inside" for v in verdicts.values()))
_common.save_results(args, {"epochs": epochs, "summary": summary, "test_images_wrong": wrong,
                            "baseline_range": [low, high], "verdicts": verdicts, "histories": histories})

# %% [markdown]
# ## Figure: each ingredient against the baseline

# %%
fig, axes = _common.plt.subplots(1, 4, figsize=(15, 3.7), sharey=True)
epochs_axis, _ = _common.column(histories[first], "test_err")
band = 100 * np.array([_common.column(histories[b], "test_err")[1] for b in baselines])      # (seeds, epochs)
for ax, label in zip(axes, ("Adam", "no augmentation", "naive init", "no zero-init")):
    ax.fill_between(epochs_axis, band.min(axis=0), band.max(axis=0), color="tab:blue", alpha=0.2,
                    label=f"baseline test, {len(baselines)} seeds (range)")
    for name, color in ((first, "tab:blue"), (label, "tab:red")):
        e, te = _common.column(histories[name], "test_err")
        _, tr_err = _common.column(histories[name], "train_err")
        short = "baseline" if name == first else name
        ax.plot(e, 100 * np.array(te), "-", color=color, lw=2, label=f"{short}: test")
        ax.plot(e, 100 * np.array(tr_err), "--", color=color, lw=1, label=f"{short}: train")
    ax.set(title=f"baseline vs {label}", xlabel="epoch", yscale="log")
    ax.legend(fontsize=7)
axes[0].set_ylabel("error (%), log scale")
fig.suptitle("ResNet-20 on the digits: the recipe against one change at a time (solid test, dashed training error)")
_common.save_figure(fig, args, "recipe_ablations.png")

# %% [markdown]
# **What the committed full run measured** (15 epochs; `docs/results/07_training_recipe/`): the baseline
# ends with 6 to 12 of the 359 test images wrong over four seeds (1.67% to 3.34%). Every change lands
# inside that range: Adam 6, no augmentation 8, naive init 9, no zero-init 6. So at this scale none of
# the four ingredients makes a difference to the final test error that a different seed would not.
# The curves do differ on the way:
#
# * Adam reaches a low error sooner (3.6% test error after 7 epochs, when the SGD runs are at 10–21%)
#   but ends with a higher training loss (0.29 against 0.04–0.05), since its weight decay acts through
#   the adaptive step;
# * without augmentation the training error reaches 0.00% and the loss 0.002 (the network memorises
#   the 1,438 images) while the test error ends at 2.23%, inside the baseline's range;
# * the zero-initialised last BN, advised by the document, slows the first epochs here: the run without
#   it is ahead until the learning rate drops (5.6% against 21.4% test error after 5 epochs).
#
# The document's advice comes from ImageNet-scale training; this experiment does not contradict it, it
# shows that on a small problem with a short budget these choices are within the noise.

# %% [markdown]
# ## Exercise 07.1 · The ResNet-110 schedule as a function
#
# Write `lr(step)` for the paper's CIFAR schedule with warm-up, counted in iterations: 0.01 for the
# first 400 steps, then 0.1, divided by 10 at step 32,000 and again at 48,000 (training stops at
# 64,000). The engine checks it at the steps where the rate changes. Then try it: does ResNet-56
# without zero-init train better here with a warm-up (tutorial 01)?

# %%
def lr(step):
    ...                       # your code here


answer = None                 # replace by lr once it is written
course.check_exercise("07.1", answer)
course.scoreboard()
