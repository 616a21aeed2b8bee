"""A run and its folder: starting a new run, resuming one, and stopping one with Ctrl-C.

A run folder (``config.out``) receives:

- ``metrics.csv``: one row per epoch (train/test loss and accuracy, learning rate, images/s)
- ``last.npz`` after every epoch and ``best.npz`` at the best test accuracy: model, optimiser,
  schedule, epoch, history, random-generator states and the config (see ``training.checkpoint``)
- ``curves.png``: loss, accuracy and learning rate per epoch; ``config.json``

A new run never overwrites a folder that holds one, nor a folder that holds files of these names
that no run wrote; a resumed run continues from ``last.npz`` and keeps its configuration, all but
``RESUMABLE_CHANGES`` (``resume_config`` builds that config). The first Ctrl-C or SIGTERM asks the
loop to finish its step and save (``StopRequest``).

How the files stay in agreement. Every file is written atomically (``serialization.atomic_write``):
at any instant it is the old file or the complete new one. At an epoch that improves the best test
accuracy, ``best.npz`` is written first and ``last.npz`` (which names the best epoch) is then made
a copy of it; so ``last.npz`` never names a best epoch that ``best.npz`` does not hold. A process
killed between the two leaves ``best.npz`` one epoch ahead of ``last.npz``: ``reconcile_best``
finds that on resume and continues from the newer file. Starting or resuming a run also removes the
temporary files that a killed process leaves (``.tmp-<random>-<name>``).
"""

import json
import os
import signal
import sys
import tempfile
import threading

from ..serialization import atomic_write, remove_temporary_files
from .checkpoint import copy_atomically, load_checkpoint, read_meta
from .config import TrainConfig, config_conflicts, describe_conflicts

RUN_FILES = ("config.json", "metrics.csv", "last.npz", "best.npz", "curves.png")


def load_last(run_dir, notes=None):
    """The checkpoint ``run_dir/last.npz`` (as ``load_checkpoint`` returns it), to resume from.

    If only ``best.npz`` is there (a run killed between writing it and ``last.npz`` in its first
    best epoch), ``last.npz`` is restored as its copy first, and a line saying so goes to ``notes``.
    """
    last_path, best_path = os.path.join(run_dir, "last.npz"), os.path.join(run_dir, "best.npz")
    if not os.path.exists(last_path) and os.path.exists(best_path):
        copy_atomically(best_path, last_path)
        _note(notes, f"{last_path} was missing (the run stopped while saving); restored it from {best_path}")
    if not os.path.exists(last_path):
        raise FileNotFoundError(f"nothing to resume: {last_path} does not exist; start the run without --resume")
    return load_checkpoint(last_path)


def _note(notes, text):
    if notes is not None:
        notes.append(text)


def _is_run_config(path):
    """Whether ``path`` is a config.json that ``write_config`` wrote (its keys are TrainConfig's)."""
    try:
        with open(path, encoding="utf-8") as f:
            saved = json.load(f)
    except (OSError, ValueError):
        return False
    return isinstance(saved, dict) and set(saved) == set(TrainConfig.__dataclass_fields__)


def _check_folder(run_dir):
    """``run_dir`` is a folder (made if missing) where files can be written, or a one-line error."""
    if os.path.exists(run_dir) and not os.path.isdir(run_dir):
        raise NotADirectoryError(f"--out {run_dir} is a file, not a folder; choose a folder for the run")
    try:
        os.makedirs(run_dir, exist_ok=True)
        with tempfile.TemporaryFile(dir=run_dir):
            pass
    except OSError as e:
        raise PermissionError(f"cannot write in the run folder {run_dir}: {e.strerror or e}; "
                              f"choose a writable --out") from None


def reconcile_best(run_dir, checkpoint, notes=None):
    """Make ``last.npz`` (``checkpoint``) and ``best.npz`` agree before a run resumes; returns the
    checkpoint to resume from. Each repair is described in ``notes``.

    - ``best.npz`` newer than ``last.npz`` (killed between the two writes of a best epoch): it is the
      same run one epoch further, so ``last.npz`` becomes its copy and the run resumes from there.
    - ``best.npz`` at another epoch than the one ``last.npz`` names (written by an older tinyresnet,
      or copied in by hand): the record of the best is set to what ``best.npz`` holds.
    - ``best.npz`` missing or unreadable: restored from ``last.npz`` if that is the best epoch's
      checkpoint, else the next epoch that improves on the best writes it.
    """
    last_path, best_path = checkpoint["path"], os.path.join(run_dir, "best.npz")
    state = checkpoint["meta"]["state"]
    try:
        best = load_checkpoint(best_path) if os.path.exists(best_path) else None
    except ValueError as e:
        best = None
        _note(notes, f"{best_path} is unreadable ({e}); the next epoch that improves on the best rewrites it")
    if best is None:
        if state["best_epoch"] and state["best_epoch"] == state["epoch"] and state["step"] == 0:
            copy_atomically(last_path, best_path)
            _note(notes, f"{best_path} was missing; restored it from {last_path} (epoch {state['epoch']})")
        elif state["best_epoch"]:
            _note(notes, f"{best_path} (epoch {state['best_epoch']}) is missing; the next epoch that improves "
                         f"on its test accuracy {state['best_accuracy']:.4f} writes it again")
        return checkpoint
    best_state = best["meta"]["state"]
    same_run = config_conflicts(checkpoint["meta"]["config"], best["meta"]["config"]) == {}
    if same_run and best_state["epoch"] > state["epoch"]:
        copy_atomically(best_path, last_path)
        _note(notes, f"{best_path} (epoch {best_state['epoch']}) was newer than {last_path} (epoch "
                     f"{state['epoch']}): the run stopped between the two; resuming from epoch {best_state['epoch']}")
        return load_checkpoint(last_path)
    if best_state["epoch"] != state["best_epoch"]:
        held = best_state["history"][-1]["test_acc"] if best_state["history"] else -1.0
        _note(notes, f"{last_path} names epoch {state['best_epoch']} as the best, but {best_path} holds epoch "
                     f"{best_state['epoch']} (test accuracy {held:.4f}); the record now follows {best_path}")
        state.update(best_epoch=best_state["epoch"], best_accuracy=held)
    return checkpoint


def prepare_run_folder(config, resume=False, notes=None):
    """Check ``config.out`` before a run starts there; returns the checkpoint to resume from, or None.

    The folder must be a folder that can be written (it is made if missing). A new run
    (``resume=False``) fails if the folder already holds a run, or files named as a run's
    (``RUN_FILES``) that no run wrote. A resumed one fails if its last checkpoint is missing, if
    ``config`` changes a setting that must stay (anything outside ``RESUMABLE_CHANGES``), or if the
    run has already trained ``config.epochs`` epochs; before that, ``reconcile_best`` makes its
    checkpoints agree. Both remove the temporary files that a killed run left. What was repaired
    or removed is described in ``notes`` (a list), one line each.
    """
    run_dir = config.out
    _check_folder(run_dir)
    if not resume:
        for name in ("last.npz", "best.npz"):
            if os.path.exists(os.path.join(run_dir, name)):
                raise FileExistsError(f"{run_dir} already holds a run ({os.path.join(run_dir, name)}); resume it "
                                      f"with --resume, or choose another --out")
        present = [name for name in RUN_FILES if os.path.exists(os.path.join(run_dir, name))]
        if present and not _is_run_config(os.path.join(run_dir, "config.json")):
            raise FileExistsError(f"{run_dir} is not a tinyresnet run folder, but it holds {', '.join(present)}, "
                                  f"which a run would overwrite; choose another --out (a new or empty folder)")
        _removed(run_dir, notes)
        return None
    _removed(run_dir, notes)
    checkpoint = reconcile_best(run_dir, load_last(run_dir, notes), notes)
    saved = checkpoint["meta"]["config"]
    conflicts = config_conflicts(saved, config.to_dict())
    if conflicts:
        raise ValueError(describe_conflicts(saved, conflicts))
    trained = checkpoint["meta"]["state"]["epoch"]
    if trained >= config.epochs:
        raise ValueError(f"{run_dir} has already trained {trained} epochs; pass a larger --epochs "
                         f"(more than {trained}) to train further")
    return checkpoint


def _removed(run_dir, notes):
    removed = remove_temporary_files(run_dir)
    if removed:
        _note(notes, f"removed {len(removed)} temporary file(s) left by an interrupted save in {run_dir}: "
                     f"{', '.join(removed)}")


def resume_config(run_dir, **changes):
    """The config saved in ``run_dir/last.npz``, with ``changes`` (only those in RESUMABLE_CHANGES).

    Raising ``epochs`` extends a run; schedules that depend on the total (cosine, and multistep
    with its default milestones) are then recomputed for the new total from the current epoch on.
    """
    last_path, best_path = os.path.join(run_dir, "last.npz"), os.path.join(run_dir, "best.npz")
    if not os.path.exists(last_path) and not os.path.exists(best_path):
        raise FileNotFoundError(f"nothing to resume: {last_path} does not exist; start the run without --resume")
    # the config only; the checkpoints are read, and repaired if they must be, by prepare_run_folder
    saved = read_meta(last_path if os.path.exists(last_path) else best_path)["config"]
    conflicts = config_conflicts(saved, changes)
    if conflicts:
        raise ValueError(describe_conflicts(saved, conflicts))
    return TrainConfig(**{**saved, **changes, "out": run_dir})


def write_config(run_dir, config):
    """``run_dir/config.json``: the run's settings, readable without tinyresnet."""
    with atomic_write(os.path.join(run_dir, "config.json"), "w", encoding="utf-8") as f:
        json.dump(config.to_dict(), f, indent=2)


class StopRequest:
    """Ctrl-C (SIGINT) or SIGTERM (what ``kill``, schedulers and ``docker stop`` send) during
    training: the first one asks the loop to stop after the current step (and save); a second one
    raises KeyboardInterrupt at once. Installed only in the main thread, and only inside the
    ``with`` block: the previous handlers are put back when it ends."""

    SIGNALS = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}

    def __init__(self):
        self.requested, self.forced, self.previous, self.signum = False, False, {}, 0

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = {signum: signal.signal(signum, self._handle) for signum in self.SIGNALS}
        return self

    def _handle(self, signum, frame):
        if self.requested:
            self.forced = True
            raise KeyboardInterrupt
        self.requested, self.signum = True, signum
        print(f"\n{self.SIGNALS.get(signum, 'signal')}: stopping after this step and saving a checkpoint (send it "
              f"again to quit without saving)", file=sys.stderr, flush=True)

    def __exit__(self, *exc):
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
