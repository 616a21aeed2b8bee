"""The training loop: ``train_step`` (one optimiser step), and ``Trainer``/``fit``, a whole run from a
``TrainConfig``: what ``tinyresnet train`` runs.

Each epoch trains on shuffled, augmented batches (SGD with momentum by default, as the ResNet
paper), then measures the test set, and writes the run folder (``training.run``: metrics.csv,
last.npz, best.npz, curves.png, config.json).

``fit(config, resume=True)`` continues from ``last.npz``. Every random choice is a function of
(seed, epoch, batch) and the checkpoint holds everything else, so a resumed run's losses equal
those of a run that was never stopped. The first Ctrl-C (or SIGTERM) finishes the current step,
saves ``last.npz`` and returns (a second one quits at once). A run that diverges (a NaN or
infinite loss, a loss 100× that of guessing, or a parameter or batch-norm statistic that is no
longer finite) stops with ``TrainingDiverged`` naming the epoch, the step and the first tensor
that went wrong; no checkpoint holding a non-finite value is ever written, so the last one on
disk is the last good one.

Building a ``Trainer`` changes no setting of the process; ``fit`` runs inside
``tiers.compute_settings()``, which sets what the fast kernels need for the run and puts it back.
"""

import dataclasses
import math
import os
import sys
import time
from dataclasses import dataclass

import numpy as np

from .. import functional as F
from .. import tiers
from ..autograd import Tensor
from ..backend import check_device, get_array_module, to_numpy
from ..data import DataLoader, get_dataset
from ..data import transforms as T
from ..ops.linear import CrossEntropyFunction, check_targets
from ..optim import SGD, Adam, lr_scheduler
from .checkpoint import copy_atomically, load_model_state, save_checkpoint
from .memory import check_step_fits
from .metrics import MetricsLog, evaluate
from .plots import plot_curves
from .run import StopRequest, prepare_run_folder, write_config

__all__ = ["FitResult", "Trainer", "TrainingDiverged", "build_datasets", "build_model", "build_optimizer",
           "build_scheduler", "default_augmentation", "fit", "train_step"]


# ------------------------------------------------------------------------------------------ one step
def train_step(model, optimizer, x, y):
    """One optimiser step on a batch: zero the gradients, forward, cross-entropy, backward, step.

    ``x`` (N, C, H, W) images as the model takes them, ``y`` (N,) class indices. Returns
    ``(loss, correct)``: the batch's mean loss as a float and how many of its N images the model
    (before the step) classified right. A NaN or infinite loss takes no backward and no step, so
    the weights stay as they were, and returns ``(loss, 0)``: the caller decides what to do about it.
    """
    optimizer.zero_grad()
    logits = model(Tensor(x))
    if get_array_module(logits.data) is not np and _class_indices(y, logits.data):
        return _device_step(optimizer, logits, y)
    loss = F.cross_entropy(logits, y)
    value = float(loss.item())
    if not math.isfinite(value):
        return value, 0
    loss.backward()
    optimizer.step()
    return value, int((logits.data.argmax(axis=1) == y).sum())


def _device_step(optimizer, logits, y):
    """The rest of ``train_step`` on a GPU, with one read (one sync) per step: the loss, the count of
    right answers and, for labels already on the device, whether one lies outside the classes, read
    together before backward. Labels still on the host are checked there, before they move."""
    xp, K = get_array_module(logits.data), logits.shape[1]
    if get_array_module(y) is np:
        check_targets(y, K)                     # on the host: no sync
        y = safe = xp.asarray(y)
        flags = []
    else:
        outside = (y < 0) | (y >= K)
        flags = [outside.any()]
        safe = xp.where(outside, 0, y)          # the loss's gather never reads outside a row
    loss = CrossEntropyFunction(safe, check_targets=False)(logits)
    correct = (logits.data.argmax(axis=1) == y).sum()
    read = to_numpy(xp.stack([a.astype(xp.float64) for a in [loss.data, correct] + flags]))   # the one sync
    if flags and read[2]:
        check_targets(y, K)                     # raises, naming the bad label (the error path may sync)
        raise ValueError(f"cross_entropy: a target is outside the {K} classes [0, {K - 1}]")
    value = float(read[0])
    if not math.isfinite(value):
        return value, 0
    loss.backward()
    optimizer.step()
    return value, int(read[1])


def _class_indices(y, logits):
    """Whether ``y`` looks like what cross_entropy takes for ``logits``: integer (N,) class indices."""
    dtype, shape = getattr(y, "dtype", None), getattr(y, "shape", None)
    return (dtype is not None and dtype.kind in "iu" and shape is not None and len(shape) == 1
            and logits.ndim == 2 and shape[0] == logits.shape[0])


class TrainingDiverged(RuntimeError):
    """The loss became NaN, infinite or exploded, or a parameter or buffer stopped being finite."""


def non_finite_tensors(model):
    """Names of the model's parameters and buffers that hold a NaN or an infinity, in state_dict
    order. One reduction per tensor, read back to the host in one transfer (one sync on a GPU)."""
    entries = [(name, p.data) for name, p in model.named_parameters()] + list(model.named_buffers())
    if not entries:
        return []
    xp = get_array_module(entries[0][1])
    finite = to_numpy(xp.stack([xp.isfinite(a).all() for _, a in entries]))
    return [name for (name, _), ok in zip(entries, finite) if not ok]


def loss_limit(num_classes):
    """100× what guessing scores (ln of the class count): far past any loss a run that still learns
    reaches, even in its first steps."""
    return 100 * math.log(max(num_classes, 2))


def exploded(loss, num_classes):
    """Whether a loss is not finite, or above ``loss_limit``."""
    return not math.isfinite(loss) or loss > loss_limit(num_classes)


@dataclass
class FitResult:
    """What ``fit`` returns: the run folder, the per-epoch history, the best test accuracy and its epoch."""

    run_dir: str
    history: list                      # one dict per epoch, as in metrics.csv
    best_accuracy: float
    best_epoch: int
    interrupted: bool = False
    stop_signal: int = 0               # the signal that stopped it (SIGINT for Ctrl-C, SIGTERM), 0 if none

    @property
    def final_accuracy(self):
        return self.history[-1]["test_acc"] if self.history else float("nan")


# ------------------------------------------------------------------------------------------ building a run
def build_datasets(config):
    """``(train, test)`` for the config's dataset, cut to ``config.subset`` images each if set."""
    train, test = get_dataset(config.dataset, config.data_dir, config.image_size, config.channels)
    if config.subset:
        train = train.subset(np.arange(min(config.subset, len(train))))
        test = test.subset(np.arange(min(config.subset, len(test))))
    return train, test


def default_augmentation(dataset, image_shape):
    """The random transforms used for training when ``augment`` is on.

    Photos (cifar10, imagefolder): the paper's CIFAR recipe, shifts of up to H/8 pixels (4 for
    32×32) by padding and random cropping, and horizontal flips. Digits and synthetic data: shifts
    of one pixel, no flips (a mirrored 2 is no digit).
    """
    _, H, W = image_shape
    if dataset in ("cifar10", "imagefolder"):
        return [T.RandomCrop((H, W), padding=max(1, H // 8)), T.RandomHorizontalFlip()]
    return [T.RandomCrop((H, W), padding=1)]


def build_model(config, num_classes, in_channels):
    """The model named by ``config.model``, initialised from ``config.seed``."""
    from .. import models
    from ..nn import init

    init.manual_seed(config.seed)
    return models.get_model(config.model, num_classes=num_classes, in_channels=in_channels)


def build_optimizer(config, model):
    if config.optimizer == "adam":
        return Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    return SGD(model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
               nesterov=config.nesterov)


def build_scheduler(config, optimizer):
    """The per-epoch schedule, behind a per-iteration linear warm-up if ``warmup_steps`` > 0."""
    if config.schedule == "cosine":
        schedule = lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    elif config.schedule == "multistep":
        milestones = config.milestones or (round(config.epochs * 0.5), round(config.epochs * 0.75))
        schedule = lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=config.gamma)
    else:
        schedule = lr_scheduler.ConstantLR(optimizer, factor=1.0)
    if config.warmup_steps > 0:
        return lr_scheduler.LinearWarmup(optimizer, config.warmup_steps, start_factor=config.warmup_factor,
                                         after=schedule)
    return schedule


# ------------------------------------------------------------------------------------------ the loop
class Trainer:
    """One run: its data, model, optimiser, schedule and counters, built from a config (and, to
    resume, from the run's ``last.npz``). ``Trainer(config).fit()`` trains it.

    Building it reads the data and builds the model, and changes no setting of the process (threads,
    allocator): those belong to ``fit``, which sets them for the run only.
    """

    def __init__(self, config, resume=False):
        from ..nn import init

        self.config = config = dataclasses.replace(config)
        self.device = check_device(config.device)
        self.run_dir = config.out
        self.last_path = os.path.join(self.run_dir, "last.npz")
        self.best_path = os.path.join(self.run_dir, "best.npz")
        notes = []                                              # what the folder check repaired
        checkpoint = prepare_run_folder(config, resume, notes)  # None for a new run
        for note in notes:
            print(f"note: {note}", file=sys.stderr)

        self.train_set, self.test_set = build_datasets(config)
        shape = self.train_set.image_shape
        if checkpoint:
            mean, std = checkpoint["meta"]["model_info"]["mean"], checkpoint["meta"]["model_info"]["std"]
        else:
            mean, std = self.train_set.channel_stats()
        normalize = T.Normalize(mean, std)
        augmentation = default_augmentation(config.dataset, shape) if config.augment else []
        self.model = build_model(config, self.train_set.num_classes, shape[0]).to(self.device)
        self.optimizer = build_optimizer(config, self.model)
        self.scheduler = build_scheduler(config, self.optimizer)
        self.train_loader = DataLoader(self.train_set, config.batch_size, shuffle=True, seed=config.seed,
                                       transform=T.Compose(augmentation + [normalize]), prefetch=config.prefetch,
                                       device=self.device)
        self.test_loader = DataLoader(self.test_set, config.eval_batch_size, transform=normalize,
                                      prefetch=config.prefetch, device=self.device)
        self.model_info = {"name": config.model, "num_classes": self.train_set.num_classes, "in_channels": shape[0],
                           "image_shape": list(shape), "classes": list(self.train_set.classes), "mean": list(mean),
                           "std": list(std), "dataset": config.dataset, "data_dir": config.data_dir}
        # epoch/step reached; the running sums of the epoch in progress; the finished epochs
        self.state = {"epoch": 0, "step": 0, "loss_sum": 0.0, "correct": 0, "seen": 0, "train_time": 0.0,
                      "history": [], "best_accuracy": -1.0, "best_epoch": 0}
        if checkpoint:
            meta = checkpoint["meta"]
            load_model_state(self.model, checkpoint["model"], self.last_path, meta["model_info"]["name"])
            self.optimizer.load_state_dict(checkpoint["optimizer"])
            self.scheduler.load_state_dict(checkpoint["scheduler"])
            self.state.update(meta["state"])
            init.default_generator().bit_generator.state = meta["rng"]["init_generator"]
        self.resumed = resume

    def check_diverged(self, epoch, loss, lr):
        """Raise ``TrainingDiverged`` after a step whose loss exploded or that left a parameter or a
        batch-norm statistic non-finite, naming the epoch and step, the first bad tensor, and the
        last checkpoint on disk (which ``save`` guarantees is finite)."""
        bad = non_finite_tensors(self.model)
        if not exploded(loss, self.train_set.num_classes) and not bad:
            return
        state, config = self.state, self.config
        where = f"at epoch {epoch + 1}, step {state['step'] + 1} (learning rate {lr:g})"
        if bad:
            what = (f"{bad[0]} is no longer finite" + (f" (and {len(bad) - 1} more tensors)" if len(bad) > 1 else "")
                    + f" {where}; the loss was {loss:g}")
        else:
            limit = loss_limit(self.train_set.num_classes)
            size = f", above {limit:.0f} (100× what guessing scores)" if math.isfinite(loss) else ""
            what = f"the loss became {loss:g} {where}{size}; every parameter and statistic is still finite"
        raise TrainingDiverged(f"{what}: training diverged and stopped. Try a lower learning rate, e.g. "
                               f"--lr {config.lr / 10:g}. {self._kept()}")

    def _kept(self):
        """What is on disk after a stop: the last checkpoint (finite, as ``save`` guarantees), or none."""
        if os.path.exists(self.last_path):
            return f"The last checkpoint, {self.last_path} (epoch {self.state['epoch']}), is finite and kept."
        return "No checkpoint had been saved yet."


    def save(self, path, interrupted=False):
        """Write a checkpoint of the run as it is now (atomically); never one holding a NaN or inf."""
        from ..nn import init

        bad = non_finite_tensors(self.model)
        if bad:
            raise TrainingDiverged(f"not saving {path}: {bad[0]} is not finite; the checkpoint on disk is kept")

        meta = {"config": self.config.to_dict(), "state": self.state, "model_info": self.model_info,
                "interrupted": interrupted,
                "rng": {"seed": self.config.seed, "init_generator": init.default_generator().bit_generator.state,
                        "batches": "shuffles and augmentations are seeded by (seed, epoch, batch)"}}
        save_checkpoint(path, self.model.state_dict(), self.optimizer.state_dict(), self.scheduler.state_dict(), meta)

    def say(self, text):
        if self.config.progress:
            from tqdm.auto import tqdm
            tqdm.write(text)

    def train_epoch(self, epoch, on_step, stop):
        """Train on the epoch's batches from ``state["step"]`` on. Returns the last learning rate used."""
        from tqdm.auto import tqdm

        state, config = self.state, self.config
        self.model.train()
        lr = self.optimizer.param_groups[0]["lr"]
        bar = tqdm(total=len(self.train_loader), initial=state["step"], desc=f"epoch {epoch + 1}/{config.epochs}",
                   disable=not config.progress, leave=False, unit="batch", dynamic_ncols=True)
        batches = self.train_loader.iterate(epoch, start=state["step"])
        started = time.perf_counter()
        try:
            for x, y in batches:
                lr = self.optimizer.param_groups[0]["lr"]
                loss, correct = train_step(self.model, self.optimizer, x, y)
                self.check_diverged(epoch, loss, lr)
                self.scheduler.step_batch()
                state["step"] += 1
                state["loss_sum"] += loss * len(y)
                state["correct"] += correct
                state["seen"] += len(y)
                elapsed = state["train_time"] + time.perf_counter() - started
                bar.update(1)
                bar.set_postfix(loss=f"{state['loss_sum'] / state['seen']:.4f}",
                                acc=f"{100 * state['correct'] / state['seen']:.1f}%", lr=f"{lr:.4g}",
                                img_s=f"{state['seen'] / max(elapsed, 1e-9):.0f}", refresh=False)
                if on_step is not None:
                    on_step(epoch, state["step"] - 1, loss)
                if stop.requested:
                    raise KeyboardInterrupt
        finally:
            batches.close()
            bar.close()
            state["train_time"] += time.perf_counter() - started
        return lr

    def end_epoch(self, epoch, lr):
        """Measure the test set, step the schedule, log the epoch and write the checkpoints."""
        state = self.state
        result = evaluate(self.model, self.test_loader)
        if not math.isfinite(result["loss"]):           # a model that gives NaN is never saved, nor called best
            raise TrainingDiverged(f"the test loss became {result['loss']} at the end of epoch {epoch + 1} "
                                   f"(learning rate {lr:g}): training diverged and stopped. Try a lower learning "
                                   f"rate, e.g. --lr {self.config.lr / 10:g}. {self._kept()}")
        seen = max(state["seen"], 1)
        row = {"epoch": epoch + 1, "train_loss": state["loss_sum"] / seen, "train_acc": state["correct"] / seen,
               "test_loss": result["loss"], "test_acc": result["accuracy"], "lr": lr,
               "time_s": round(state["train_time"], 3),
               "images_per_s": round(state["seen"] / max(state["train_time"], 1e-9), 1)}
        self.scheduler.step()
        improved = row["test_acc"] > state["best_accuracy"]
        state.update(epoch=epoch + 1, step=0, loss_sum=0.0, correct=0, seen=0, train_time=0.0,
                     history=state["history"] + [row])
        if improved:
            state.update(best_accuracy=row["test_acc"], best_epoch=epoch + 1)
        self.log.append(row)
        if improved:                  # best first: last.npz never names a best epoch that best.npz lacks
            self.save(self.best_path)
            copy_atomically(self.best_path, self.last_path)
        else:
            self.save(self.last_path)
        self.say(f"epoch {epoch + 1:>3}/{self.config.epochs}  train loss {row['train_loss']:.4f} "
                 f"acc {100 * row['train_acc']:5.1f}%  test loss {row['test_loss']:.4f} "
                 f"acc {100 * row['test_acc']:5.2f}%  lr {lr:.4g}  {row['images_per_s']:.0f} img/s  "
                 f"{row['time_s']:.1f}s" + ("  *best" if improved else ""))

    def fit(self, on_step=None):
        """Train until ``config.epochs``; returns a ``FitResult``.

        ``on_step(epoch, step, loss)`` is called after every training step (both counted from 0).
        The whole run, evaluation and checkpoints included, runs inside ``tiers.compute_settings()``:
        on the fast tier the convolutions compute on threads of their own with BLAS on one thread
        each, and glibc keeps freed memory for the next step; the thread counts are put back when
        ``fit`` returns or raises.
        """
        with tiers.compute_settings():
            return self._run(on_step)

    def _run(self, on_step):
        config, state = self.config, self.state
        momenta = {"adam": 2}.get(config.optimizer, 1 if config.momentum else 0)      # optimiser arrays per weight
        check_step_fits(self.model, self.train_set.image_shape, config.batch_size, momenta, self.device)
        os.makedirs(self.run_dir, exist_ok=True)
        write_config(self.run_dir, config)
        self.log = MetricsLog(os.path.join(self.run_dir, "metrics.csv"))
        self.log.rewrite(state["history"])
        if not self.resumed:
            n_params = sum(int(p.size) for p in self.model.parameters())
            self.say(f"training {config.model} ({n_params:,} parameters) on {config.dataset}: {len(self.train_set)} "
                     f"training and {len(self.test_set)} test images {self.train_set.image_shape}, {config.epochs} "
                     f"epochs on {self.device}; run folder {self.run_dir}")
        else:
            self.say(f"resuming {self.run_dir} in epoch {state['epoch'] + 1} after step {state['step']}")
        stop, interrupted = StopRequest(), False
        try:
            with stop:
                for epoch in range(state["epoch"], config.epochs):
                    lr = self.train_epoch(epoch, on_step, stop)
                    self.end_epoch(epoch, lr)
                    if stop.requested:
                        raise KeyboardInterrupt
        except KeyboardInterrupt:
            if stop.forced:
                raise
            self.save(self.last_path, interrupted=True)
            interrupted = True
            where = (f"after epoch {state['epoch']}" if state["step"] == 0 else
                     f"in epoch {state['epoch'] + 1} after step {state['step']}")
            self.say(f"interrupted {where}: saved {self.last_path}; continue with "
                     f"`tinyresnet train --resume --out {self.run_dir}`")
        finally:
            if state["history"]:
                plot_curves(state["history"], os.path.join(self.run_dir, "curves.png"))
        return FitResult(self.run_dir, state["history"], max(state["best_accuracy"], 0.0), state["best_epoch"],
                         interrupted, stop.signum if interrupted else 0)


def fit(config, resume=False, on_step=None):
    """Train a model as ``config`` says (``resume=True``: continue the run in ``config.out``).

    ``on_step(epoch, step, loss)`` is called after every training step (both counted from 0).
    Returns a ``FitResult`` (history, best accuracy, whether Ctrl-C stopped it).

    On the fast tier the run computes inside ``tiers.compute_settings()``. There the convolutions
    split their batch slices between threads of their own, as many as NumPy's BLAS had, with BLAS
    on one thread each (``tinyresnet.kernels.num_threads``): as fast on an idle machine, and about
    twice as fast when another program is busy on the same cores; both thread counts are put back
    when ``fit`` ends. On Linux glibc also keeps freed memory for reuse
    (``tinyresnet.kernels.keep_freed_memory``): each step then reuses the last one's memory instead
    of taking fresh pages from the kernel (10–20% of a CPU step); that setting stays, and the process
    keeps its peak memory until it exits. On the plain tier nothing is changed.
    """
    return Trainer(config, resume).fit(on_step)
