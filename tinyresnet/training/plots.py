"""Figures of a run, drawn with matplotlib's Agg canvas (no window, no global backend change)."""

import numpy as np

from ..serialization import atomic_write


def _figure(width, height):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path, tight=False):
    """Write ``fig`` as a PNG atomically: a viewer refreshing ``curves.png`` never reads half a file."""
    with atomic_write(path) as f:
        fig.savefig(f, format="png", bbox_inches="tight" if tight else None)
    return path


def plot_curves(history, path):
    """Loss, accuracy and learning rate per epoch, side by side, into ``path`` (PNG)."""
    epochs = [row["epoch"] for row in history]
    fig = _figure(13, 3.8)
    fig.subplots_adjust(left=0.05, right=0.98, bottom=0.14, top=0.9, wspace=0.25)
    loss, acc, lr = fig.subplots(1, 3)
    loss.plot(epochs, [r["train_loss"] for r in history], "o-", ms=3, label="train")
    loss.plot(epochs, [r["test_loss"] for r in history], "o-", ms=3, label="test")
    loss.set(title="cross-entropy loss", xlabel="epoch")
    if all(r["train_loss"] > 0 and r["test_loss"] > 0 for r in history):
        loss.set_yscale("log")
    acc.plot(epochs, [100 * r["train_acc"] for r in history], "o-", ms=3, label="train")
    acc.plot(epochs, [100 * r["test_acc"] for r in history], "o-", ms=3, label="test")
    best = max(history, key=lambda r: r["test_acc"])
    acc.set(title=f"accuracy (best test {100 * best['test_acc']:.2f}% at epoch {best['epoch']})",
            xlabel="epoch", ylabel="%")
    lr.plot(epochs, [r["lr"] for r in history], "o-", ms=3, color="tab:green")
    lr.set(title="learning rate", xlabel="epoch")
    for ax in (loss, acc, lr):
        ax.grid(alpha=0.3)
    loss.legend()
    acc.legend()
    return _save(fig, path)


def plot_confusion(counts, classes, path, title="confusion matrix"):
    """The confusion matrix as a heat map with the counts written in, into ``path`` (PNG)."""
    k = len(classes)
    size = max(4.0, 0.45 * k + 2)
    fig = _figure(size + 1, size)
    ax = fig.subplots()
    image = ax.imshow(counts, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set(xticks=np.arange(k), yticks=np.arange(k), xlabel="predicted", ylabel="true", title=title)
    slanted = k > 10 or max(len(str(c)) for c in classes) > 3
    ax.set_xticklabels([str(c) for c in classes], rotation=45 if slanted else 0, ha="right" if slanted else "center")
    ax.set_yticklabels([str(c) for c in classes])
    if k <= 30:
        threshold = counts.max() / 2 if counts.size else 0
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if counts[i, j] > threshold else "black")
    return _save(fig, path, tight=True)
