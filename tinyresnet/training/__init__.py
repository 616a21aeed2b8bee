"""Pieces of the training loop (``tinyresnet.train``): checkpoints, metrics and plots."""

from .checkpoint import check_model_state, load_checkpoint, save_checkpoint
from .metrics import confusion_matrix, evaluate, format_confusion, read_metrics
from .plots import plot_confusion, plot_curves

__all__ = ["check_model_state", "confusion_matrix", "evaluate", "format_confusion", "load_checkpoint",
           "plot_confusion", "plot_curves", "read_metrics", "save_checkpoint"]
