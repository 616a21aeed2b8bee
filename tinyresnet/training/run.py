"""A run and its folder: starting a new run, resuming one, and stopping one with Ctrl-C.

A run folder (``config.out``) receives:

- ``metrics.csv``: one row per epoch (train/test loss and accuracy, learning rate, images/s)
- ``last.npz`` after every epoch and ``best.npz`` at the best test accuracy: model, optimiser,
  schedule, epoch, history, random-generator states and the config (see ``training.checkpoint``)
- ``curves.png``: loss, accuracy and learning rate per epoch; ``config.json``

A new run never overwrites a folder that holds one; a resumed run continues from ``last.npz`` and
keeps its configuration, all but ``RESUMABLE_CHANGES`` (``resume_config`` builds that config). The
first Ctrl-C asks the loop to finish its step and save (``StopRequest``).
"""

import json
import os
import signal
import sys
import threading

from ..serialization import atomic_write
from .checkpoint import load_checkpoint
from .config import TrainConfig, config_conflicts, describe_conflicts


def load_last(run_dir):
    """The checkpoint ``run_dir/last.npz`` (as ``load_checkpoint`` returns it), to resume from."""
    last_path = os.path.join(run_dir, "last.npz")
    if not os.path.exists(last_path):
        raise FileNotFoundError(f"nothing to resume: {last_path} does not exist; start the run without --resume")
    return load_checkpoint(last_path)


def prepare_run_folder(config, resume=False):
    """Check ``config.out`` before a run starts there; returns the checkpoint to resume from, or None.

    A new run (``resume=False``) fails if the folder already holds a run. A resumed one fails if its
    last checkpoint is missing, if ``config`` changes a setting that must stay (anything outside
    ``RESUMABLE_CHANGES``), or if the run has already trained ``config.epochs`` epochs.
    """
    run_dir = config.out
    if not resume:
        last_path = os.path.join(run_dir, "last.npz")
        if os.path.exists(last_path):
            raise FileExistsError(f"{run_dir} already holds a run ({last_path}); resume it with --resume, "
                                  f"or choose another --out")
        return None
    checkpoint = load_last(run_dir)
    saved = checkpoint["meta"]["config"]
    conflicts = config_conflicts(saved, config.to_dict())
    if conflicts:
        raise ValueError(describe_conflicts(saved, conflicts))
    trained = checkpoint["meta"]["state"]["epoch"]
    if trained >= config.epochs:
        raise ValueError(f"{run_dir} has already trained {trained} epochs; pass a larger --epochs "
                         f"(more than {trained}) to train further")
    return checkpoint


def resume_config(run_dir, **changes):
    """The config saved in ``run_dir/last.npz``, with ``changes`` (only those in RESUMABLE_CHANGES).

    Raising ``epochs`` extends a run; schedules that depend on the total (cosine, and multistep
    with its default milestones) are then recomputed for the new total from the current epoch on.
    """
    saved = load_last(run_dir)["meta"]["config"]
    conflicts = config_conflicts(saved, changes)
    if conflicts:
        raise ValueError(describe_conflicts(saved, conflicts))
    return TrainConfig(**{**saved, **changes, "out": run_dir})


def write_config(run_dir, config):
    """``run_dir/config.json``: the run's settings, readable without tinyresnet."""
    with atomic_write(os.path.join(run_dir, "config.json"), "w", encoding="utf-8") as f:
        json.dump(config.to_dict(), f, indent=2)


class StopRequest:
    """Ctrl-C during training: the first press asks the loop to stop after the current step (and
    save); a second one raises KeyboardInterrupt at once. Installed only in the main thread, and
    only inside the ``with`` block: the previous handler is put back when it ends."""

    def __init__(self):
        self.requested, self.forced, self.previous = False, False, None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            self.forced = True
            raise KeyboardInterrupt
        self.requested = True
        print("\nCtrl-C: stopping after this step and saving a checkpoint (press again to quit without saving)",
              file=sys.stderr, flush=True)

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
