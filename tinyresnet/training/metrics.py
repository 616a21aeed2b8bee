"""Evaluation, the confusion matrix, and the per-epoch CSV log."""

import csv

import numpy as np

from .. import functional as F
from ..autograd import Tensor, no_grad
from ..backend import to_numpy
from ..serialization import atomic_write

CSV_FIELDS = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "time_s", "images_per_s")


def evaluate(model, loader):
    """Loss and accuracy of ``model`` over every batch of ``loader``, in eval mode and without a graph.

    Returns ``{"loss": mean loss, "accuracy": fraction correct, "predictions": (N,), "labels": (N,)}``.
    The model is left in eval mode.
    """
    model.eval()
    loss_sum, predictions, labels = 0.0, [], []
    with no_grad():
        for x, y in loader:
            logits = model(Tensor(x))
            loss_sum += float(F.cross_entropy(logits, y, reduction="sum").item())
            predictions.append(to_numpy(logits.data.argmax(axis=1)))
            labels.append(to_numpy(y))
    predictions = np.concatenate(predictions) if predictions else np.zeros(0, np.int64)
    labels = np.concatenate(labels) if labels else np.zeros(0, np.int64)
    n = max(len(labels), 1)
    return {"loss": loss_sum / n, "accuracy": float((predictions == labels).sum()) / n,
            "predictions": predictions, "labels": labels}


def confusion_matrix(labels, predictions, num_classes):
    """counts[i, j] = how many images of class i were predicted as class j. Shapes: (N,), (N,) -> (K, K)"""
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(counts, (np.asarray(labels), np.asarray(predictions)), 1)
    return counts


def format_confusion(counts, classes):
    """The confusion matrix as a text table: rows are true classes, columns predicted ones."""
    names = [str(c)[:8] for c in classes]
    width = max(3, *(len(n) for n in names), len(str(counts.max())))
    corner = "true\\predicted"
    first = max(len(corner), *(len(n) for n in names))
    lines = [corner.ljust(first) + " " + " ".join(n.rjust(width) for n in names)]
    for name, row in zip(names, counts):
        lines.append(name.ljust(first) + " " + " ".join(str(v).rjust(width) for v in row))
    return "\n".join(lines)


class MetricsLog:
    """``metrics.csv`` in the run folder: one row appended per epoch (see ``CSV_FIELDS``)."""

    def __init__(self, path):
        self.path = path

    def rewrite(self, history):
        """Write the header and ``history`` from scratch (when a run starts or resumes), atomically."""
        with atomic_write(self.path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
            writer.writeheader()
            writer.writerows({k: row[k] for k in CSV_FIELDS} for row in history)

    def append(self, row):
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=CSV_FIELDS).writerow({k: row[k] for k in CSV_FIELDS})


def read_metrics(path):
    """The rows of a ``metrics.csv`` as dicts of numbers."""
    with open(path, newline="") as f:
        return [{k: (int(v) if k == "epoch" else float(v)) for k, v in row.items()} for row in csv.DictReader(f)]
