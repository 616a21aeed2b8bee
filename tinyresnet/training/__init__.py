"""Training: the loop first, then the pieces it is made of.

- ``loop``: ``train_step`` (one optimiser step on a batch), ``Trainer`` and ``fit`` (a whole run
  from a ``TrainConfig``, what ``tinyresnet train`` runs), ``FitResult``, ``TrainingDiverged``, and
  the ``build_*`` helpers that turn a config into data, model, optimiser and schedule
- ``run``: the run folder, ``resume_config``, resuming from ``last.npz``, Ctrl-C
- ``config`` (``TrainConfig``), ``checkpoint``, ``metrics``, ``plots``, and ``inference``
  (``load_trained_model``, ``predict_proba``: using a trained model)
"""

from .checkpoint import load_checkpoint, load_model_state, save_checkpoint
from .config import RESUMABLE_CHANGES, TrainConfig
from .inference import load_trained_model, predict_proba
from .loop import (
    FitResult,
    Trainer,
    TrainingDiverged,
    build_datasets,
    build_model,
    build_optimizer,
    build_scheduler,
    default_augmentation,
    fit,
    train_step,
)
from .metrics import confusion_matrix, evaluate, format_confusion, read_metrics
from .plots import plot_confusion, plot_curves
from .run import resume_config

__all__ = [
    # the loop
    "train_step", "Trainer", "fit", "TrainConfig", "FitResult", "TrainingDiverged", "resume_config",
    "RESUMABLE_CHANGES", "build_datasets", "build_model", "build_optimizer", "build_scheduler",
    "default_augmentation", "load_trained_model", "predict_proba",
    # its pieces
    "confusion_matrix", "evaluate", "format_confusion", "load_checkpoint", "load_model_state", "plot_confusion",
    "plot_curves", "read_metrics", "save_checkpoint",
]
