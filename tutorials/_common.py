"""What every tutorial shares: command-line options, the output folder, figures, the digits data and a
small training loop that records the curves the tutorials plot.

Import it before NumPy: it asks the BLAS library for one thread unless you set OPENBLAS_NUM_THREADS
(or OMP_NUM_THREADS) yourself. The engine's matrices are small, and on a busy 2-core machine a second
BLAS thread made a ResNet-56 training step about ten times slower (3.5 s against 0.25 s).
"""

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import argparse
import json
import sys
import time

import matplotlib
import numpy as np

if "ipykernel" not in sys.modules:          # a script: draw off-screen; a notebook keeps its inline figures
    matplotlib.use("Agg")
import matplotlib.pyplot as plt

from tinyresnet import course
from tinyresnet.data import DataLoader, load_digits
from tinyresnet.data import transforms as T
from tinyresnet.optim import SGD, MultiStepLR
from tinyresnet.training import evaluate, train_step

plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": 110, "axes.grid": True, "grid.alpha": 0.3,
                     "font.size": 9, "axes.titlesize": 10, "legend.fontsize": 8})


# ------------------------------------------------------------------------------------------ options and output
class _Tee:
    """Write to the terminal and to ``output.txt`` in the output folder at once."""

    def __init__(self, stream, path):
        self.stream, self.file = stream, open(path, "w", encoding="utf-8")

    def write(self, text):
        self.stream.write(text)
        self.file.write(text)

    def flush(self):
        self.stream.flush()
        self.file.flush()

    def __getattr__(self, name):            # encoding, isatty, ...: as the terminal's stream
        return getattr(self.stream, name)


def setup(name, description, quick=None):
    """Parse ``--quick``, ``--out`` and ``--seed``; make the output folder; copy everything printed
    into ``output.txt`` there. Returns the options (``args.quick``, ``args.out``, ``args.seed``).

    In a notebook, set ``QUICK = True`` in the first cell and pass it as ``quick``, or start Jupyter
    with ``TINYRESNET_QUICK=1``: quick is ``quick`` if not None, else ``--quick``, else that variable.
    The output folder is ``--out``, else ``$TINYRESNET_OUT/<name>`` when that is set, else
    ``runs/tutorials/<name>``.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="a small, fast version (about 10 s; the tests use it)")
    parser.add_argument("--out", default=None,
                        help=f"folder for the figures, output.txt and results.json (default: runs/tutorials/{name})")
    parser.add_argument("--seed", type=int, default=0, help="seed for the weights and the batches (default 0)")
    argv = [] if "ipykernel" in sys.modules else sys.argv[1:]      # a kernel's own arguments are not ours
    args, _ = parser.parse_known_args(argv)
    args.quick = course.quick_mode(quick, args.quick)
    if args.out is None:
        base = os.environ.get("TINYRESNET_OUT")
        args.out = os.path.join(base, name) if base else os.path.join("runs", "tutorials", name)
    os.makedirs(args.out, exist_ok=True)
    if not isinstance(sys.stdout, _Tee):
        sys.stdout = _Tee(sys.stdout, os.path.join(args.out, "output.txt"))
    mode = "quick" if args.quick else "full"
    print(f"{name} ({mode} run, seed {args.seed}); output folder: {args.out}")
    return args


def save_figure(fig, args, filename):
    """Save ``fig`` as a PNG into the output folder, show it inline when in a notebook, close it and
    return the path. Saves: ``<args.out>/<filename>``."""
    path = os.path.join(args.out, filename)
    fig.savefig(path, bbox_inches="tight")
    course.show_figure(fig)
    plt.close(fig)
    print(f"[figure] {path}")
    return path


def save_results(args, results):
    """Write the tutorial's measured numbers to ``results.json`` in the output folder."""
    path = os.path.join(args.out, "results.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2, default=_plain)
    print(f"[numbers] {path}")
    return path


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def seconds_since(start):
    return time.perf_counter() - start


# ------------------------------------------------------------------------------------------ data
def digits(quick=False, train_size=None, test_size=None):
    """The bundled 8×8 handwritten digits: ``(train, test, normalize)``.

    1,438 training and 359 test images of shape (1, 8, 8); ``--quick`` keeps 256 and 128 of them (the
    first ones of a fixed stratified split, so every class is there). ``normalize`` is the
    per-channel standardisation computed on the training images.
    """
    train, test = load_digits()
    train_size = train_size or (256 if quick else None)
    test_size = test_size or (128 if quick else None)
    rng = np.random.default_rng(0)          # the same subset every time, mixed across classes
    if train_size and train_size < len(train):
        train = train.subset(np.sort(rng.permutation(len(train))[:train_size]))
    if test_size and test_size < len(test):
        test = test.subset(np.sort(rng.permutation(len(test))[:test_size]))
    mean, std = train.channel_stats()
    return train, test, T.Normalize(mean, std)


def batch_of_digits(n=64, seed=0):
    """``n`` normalised training digits (n, 1, 8, 8) float32 and their labels, chosen with ``seed``."""
    train, _, normalize = digits()
    indices = np.random.default_rng(seed).choice(len(train), size=n, replace=False)
    x, y = train.get_batch(indices)
    return normalize(x), y


# ------------------------------------------------------------------------------------------ training
def paper_sgd(model, lr=0.1, weight_decay=1e-4):
    """The document's recipe: SGD with momentum 0.9 and weight decay 1e-4."""
    return SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay)


def step_schedule(optimizer, epochs):
    """Divide the learning rate by 10 at 50% and 75% of the epochs (the paper's CIFAR schedule, shortened)."""
    return MultiStepLR(optimizer, milestones=[max(1, round(epochs * 0.5)), max(1, round(epochs * 0.75))], gamma=0.1)


def train(model, train_set, test_set, normalize, epochs, optimizer=None, scheduler=None, augment=True,
          batch_size=64, seed=0, label="model", measure_train=True):
    """Train ``model`` and return its history: one dict per epoch.

    Each epoch trains on shuffled batches (random one-pixel shifts when ``augment``), one
    ``tinyresnet.training.train_step`` per batch, the step ``tinyresnet train`` takes. Then it
    measures, in eval mode, the error on the test set and (``measure_train``) on the whole training
    set without augmentation: the "training error" of the paper's figures, measured cleanly at the
    end of the epoch rather than averaged over a changing network. The default optimiser is ``paper_sgd`` with
    ``step_schedule``. A NaN loss stops the run; the history then ends with ``diverged: True``.
    """
    optimizer = optimizer or paper_sgd(model)
    scheduler = scheduler or step_schedule(optimizer, epochs)
    shift = [T.RandomCrop(train_set.image_shape[1:], padding=1)] if augment else []
    loader = DataLoader(train_set, batch_size, shuffle=True, seed=seed, transform=T.Compose(shift + [normalize]),
                        prefetch=0)
    clean_train = DataLoader(train_set, 500, transform=normalize, prefetch=0)
    test_loader = DataLoader(test_set, 500, transform=normalize, prefetch=0)
    history, started = [], time.perf_counter()
    for epoch in range(epochs):
        model.train()
        loss_sum, seen = 0.0, 0
        lr = optimizer.param_groups[0]["lr"]
        for x, y in loader.iterate(epoch):
            value, _ = train_step(model, optimizer, x, y)       # zero_grad, forward, loss, backward, step
            if not np.isfinite(value):
                print(f"  {label}: the loss became {value} in epoch {epoch + 1}; stopping this run")
                history.append({"epoch": epoch + 1, "diverged": True})
                return history
            scheduler.step_batch()               # per-iteration schedules (warm-up) move here; others ignore it
            loss_sum, seen = loss_sum + value * len(y), seen + len(y)
        scheduler.step()
        test = evaluate(model, test_loader)
        row = {"epoch": epoch + 1, "lr": lr, "train_loss": loss_sum / seen, "test_loss": test["loss"],
               "test_err": 1 - test["accuracy"], "time_s": round(seconds_since(started), 2)}
        if measure_train:
            clean = evaluate(model, clean_train)
            row.update(train_err=1 - clean["accuracy"], train_eval_loss=clean["loss"])
        history.append(row)
        train_text = f"train error {100 * row['train_err']:5.2f}%  " if measure_train else ""
        print(f"  {label:<14} epoch {epoch + 1:>2}/{epochs}  loss {row['train_loss']:.4f}  {train_text}"
              f"test error {100 * row['test_err']:5.2f}%  lr {lr:.3g}  ({row['time_s']:.0f} s)")
    return history


def last(history, key):
    """The value of ``key`` in the last epoch that has it (NaN if none does)."""
    values = [row[key] for row in history if key in row]
    return values[-1] if values else float("nan")


def column(history, key):
    """(epochs, values) of ``key`` over the history, for plotting."""
    rows = [row for row in history if key in row]
    return [row["epoch"] for row in rows], [row[key] for row in rows]
