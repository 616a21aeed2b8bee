"""Learning-rate schedules, as torch.optim.lr_scheduler: call ``step()`` once per epoch
(``OneCycleLR``: once per batch).

Each schedule computes the learning rate from its counters in closed form (never from the
optimizer's current value), so a schedule restored with ``load_state_dict`` continues exactly,
and a warm-up can scale another schedule without the two fighting over ``group["lr"]``.

The ResNet paper's CIFAR recipe: lr 0.1, divided by 10 at 32k and 48k iterations, stopped at 64k
(≈ epochs 82, 123, 164 at batch 128 on 50k images):

    scheduler = MultiStepLR(optimizer, milestones=[82, 123], gamma=0.1)

and its ResNet-110 warm-up: lr 0.01 until the training error is below 80% (about 400 iterations),
then back to 0.1 — a constant warm-up over 400 iterations in front of that schedule:

    scheduler = LinearWarmup(optimizer, warmup_steps=400, start_factor=0.1, mode="constant",
                             after=MultiStepLR(optimizer, milestones=[82, 123]))
    # per iteration: optimizer.step(); scheduler.step_batch()     per epoch: scheduler.step()
"""

import math
from bisect import bisect_right


class LRScheduler:
    """Base class: sets each parameter group's ``lr`` to ``get_lr()`` after every ``step()``.

    ``last_epoch`` counts the calls to ``step()`` (0 right after construction, as in torch);
    ``base_lrs`` are the groups' learning rates when the schedule was made (kept as
    ``group["initial_lr"]``). ``step_batch()``, called after every optimizer step, does nothing
    except in warm-ups.
    """

    def __init__(self, optimizer, last_epoch=-1):
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            if last_epoch == -1:
                group.setdefault("initial_lr", group["lr"])
            elif "initial_lr" not in group:
                raise KeyError(f"{type(self).__name__}(last_epoch={last_epoch}) needs group['initial_lr']; "
                               f"resume with load_state_dict instead")
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self.step()

    def get_lr(self):
        """The learning rate of each group at ``self.last_epoch``."""
        raise NotImplementedError

    def step(self):
        """Advance one epoch."""
        self.last_epoch += 1
        self._apply()

    def step_batch(self):
        """Called after every optimizer step; schedules that change per epoch ignore it."""

    def _apply(self):
        self._last_lr = [float(lr) for lr in self.get_lr()]
        for group, lr in zip(self.optimizer.param_groups, self._last_lr):
            group["lr"] = lr

    def get_last_lr(self):
        """The learning rates set by the last ``step()``, one per group."""
        return list(self._last_lr)

    def state_dict(self):
        """The counters (settings such as milestones or T_max come from the constructor)."""
        return {"last_epoch": self.last_epoch, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state):
        self.last_epoch = int(state["last_epoch"])
        self.base_lrs = [float(lr) for lr in state["base_lrs"]]
        self._apply()

    def __repr__(self):
        settings = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if k not in ("optimizer", "_last_lr"))
        return f"{type(self).__name__}({settings})"


class ConstantLR(LRScheduler):
    """lr = base_lr · factor for the first ``total_iters`` epochs, then base_lr (as torch's ConstantLR).

    ``ConstantLR(optimizer, factor=1.0)`` keeps the base rate throughout: no schedule.
    """

    def __init__(self, optimizer, factor=1 / 3, total_iters=5, last_epoch=-1):
        if not 0 < factor <= 1:
            raise ValueError(f"ConstantLR factor must be in (0, 1], got {factor}")
        self.factor, self.total_iters = float(factor), int(total_iters)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        factor = self.factor if self.last_epoch < self.total_iters else 1.0
        return [base * factor for base in self.base_lrs]


class MultiStepLR(LRScheduler):
    """lr = base_lr · gamma^(number of milestones ≤ epoch): multiply by ``gamma`` at each milestone epoch."""

    def __init__(self, optimizer, milestones, gamma=0.1, last_epoch=-1):
        self.milestones = sorted(int(m) for m in milestones)
        self.gamma = float(gamma)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return [base * self.gamma ** bisect_right(self.milestones, self.last_epoch) for base in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """lr = eta_min + (base_lr − eta_min) · (1 + cos(π · epoch / T_max)) / 2: from base_lr at epoch 0
    down to eta_min at epoch ``T_max`` (SGDR without restarts; Loshchilov & Hutter, 2017)."""

    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):
        if T_max < 1:
            raise ValueError(f"CosineAnnealingLR: T_max must be at least 1 epoch, got {T_max}")
        self.T_max, self.eta_min = int(T_max), float(eta_min)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        cosine = (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
        return [self.eta_min + (base - self.eta_min) * cosine for base in self.base_lrs]


class LinearWarmup(LRScheduler):
    """Warm-up: scale the learning rate by a factor below 1 for the first ``warmup_steps`` steps.

    factor = start_factor                                             (mode="constant")
    factor = start_factor + (1 − start_factor) · step / warmup_steps  (mode="linear")
    factor = 1                                                        once step ≥ warmup_steps

    The steps are optimizer iterations (``unit="iteration"``: call ``step_batch()`` after every
    ``optimizer.step()``) or epochs (``unit="epoch"``: counted by ``step()``). The scaled rate is
    the one of the schedule ``after`` (stepped by ``step()`` once per epoch), or the base rate.
    The paper's ResNet-110 warm-up is ``warmup_steps=400, start_factor=0.1, mode="constant"``
    on lr 0.1: 0.01 for 400 iterations, then 0.1.
    """

    def __init__(self, optimizer, warmup_steps, start_factor=0.1, mode="linear", after=None, unit="iteration"):
        if mode not in ("linear", "constant"):
            raise ValueError(f"LinearWarmup mode must be 'linear' or 'constant', got {mode!r}")
        if unit not in ("iteration", "epoch"):
            raise ValueError(f"LinearWarmup unit must be 'iteration' or 'epoch', got {unit!r}")
        if not 0 < start_factor <= 1:
            raise ValueError(f"LinearWarmup start_factor must be in (0, 1], got {start_factor}")
        if after is not None and after.optimizer is not optimizer:
            raise ValueError("LinearWarmup: the `after` schedule must drive the same optimizer")
        self.optimizer, self.after = optimizer, after
        self.warmup_steps, self.start_factor = int(warmup_steps), float(start_factor)
        self.mode, self.unit = mode, unit
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch, self.warmup_step = 0, 0      # `after` made its own first step already
        self._apply()

    def factor(self):
        if self.warmup_step >= self.warmup_steps:
            return 1.0
        if self.mode == "constant":
            return self.start_factor
        return self.start_factor + (1 - self.start_factor) * self.warmup_step / self.warmup_steps

    def get_lr(self):
        rates = self.after.get_last_lr() if self.after is not None else self.base_lrs
        return [lr * self.factor() for lr in rates]

    def step(self):
        self.last_epoch += 1
        if self.after is not None:
            self.after.step()
        if self.unit == "epoch":
            self.warmup_step += 1
        self._apply()

    def step_batch(self):
        if self.unit == "iteration":
            self.warmup_step += 1
            if self.warmup_step <= self.warmup_steps:   # afterwards the rate no longer changes per batch
                self._apply()

    def state_dict(self):
        state = {**super().state_dict(), "warmup_step": self.warmup_step}
        if self.after is not None:
            state["after"] = self.after.state_dict()
        return state

    def load_state_dict(self, state):
        if self.after is not None:
            if "after" not in state:
                raise ValueError("this LinearWarmup wraps a schedule but the saved one did not")
            self.after.load_state_dict(state["after"])
        self.warmup_step = int(state["warmup_step"])
        super().load_state_dict(state)


class StepLR(LRScheduler):
    """lr = base_lr · gamma^⌊epoch / step_size⌋: multiply by ``gamma`` every ``step_size`` epochs
    (as torch's StepLR)."""

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        if int(step_size) != step_size or step_size < 1:
            raise ValueError(f"StepLR: step_size must be a whole number of epochs ≥ 1, got {step_size!r}")
        self.step_size, self.gamma = int(step_size), float(gamma)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return [base * self.gamma ** (self.last_epoch // self.step_size) for base in self.base_lrs]


class ExponentialLR(LRScheduler):
    """lr = base_lr · gamma^epoch: multiply by ``gamma`` after every epoch (as torch's ExponentialLR)."""

    def __init__(self, optimizer, gamma, last_epoch=-1):
        self.gamma = float(gamma)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return [base * self.gamma ** self.last_epoch for base in self.base_lrs]


def _per_group(value, optimizer, what, schedule):
    """One number per parameter group: ``value`` itself if it is a list or tuple, else repeated."""
    groups = len(optimizer.param_groups)
    if isinstance(value, (list, tuple)):
        if len(value) != groups:
            raise ValueError(f"{schedule}: {what} has {len(value)} values but the optimizer has {groups} "
                             f"parameter groups; give one per group, or a single number for all")
        return [float(v) for v in value]
    return [float(value)] * groups


class OneCycleLR(LRScheduler):
    """The 1cycle policy (Smith & Topin, 2018), as torch's OneCycleLR: stepped once per **batch**.

    Over ``total_steps`` optimizer steps (or ``epochs · steps_per_epoch``) the rate rises from
    ``max_lr / div_factor`` to ``max_lr`` during the first ``pct_start`` of the steps, then falls
    to ``max_lr / div_factor / final_div_factor``; ``anneal_strategy`` "cos" follows half a cosine
    in each phase, "linear" a straight line. With ``three_phase=True`` the rate first climbs to
    ``max_lr``, comes back down symmetrically to ``max_lr / div_factor``, and then falls to the minimum.

    With ``cycle_momentum=True`` (torch's default) the momentum moves the other way, from
    ``max_momentum`` down to ``base_momentum`` while the rate rises, and back up while it falls:
    SGD's ``momentum``, or Adam's and AdamW's β1 (``betas[0]``). As in torch, this also gives an
    SGD made with momentum=0 a momentum; pass ``cycle_momentum=False`` to keep it at 0.

    Step it once per batch, in either of two ways (not both):

    - torch's: ``scheduler.step()`` after every ``optimizer.step()``;
    - this project's training-loop convention: ``scheduler.step_batch()`` after every
      ``optimizer.step()`` and ``scheduler.step()`` at the end of each epoch; once ``step_batch()``
      has been called, ``step()`` only marks the end of an epoch and leaves the rate alone.

    Stepping past ``total_steps`` raises ValueError, as in torch.
    """

    def __init__(self, optimizer, max_lr, total_steps=None, epochs=None, steps_per_epoch=None, pct_start=0.3,
                 anneal_strategy="cos", cycle_momentum=True, base_momentum=0.85, max_momentum=0.95,
                 div_factor=25.0, final_div_factor=1e4, three_phase=False, last_epoch=-1):
        self.total_steps = self._count_steps(total_steps, epochs, steps_per_epoch)
        if not 0 <= pct_start <= 1:
            raise ValueError(f"OneCycleLR: pct_start is the fraction of the steps spent warming up, a number in "
                             f"[0, 1]; got {pct_start!r}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"OneCycleLR: anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
        if div_factor <= 0 or final_div_factor <= 0:
            raise ValueError(f"OneCycleLR: div_factor and final_div_factor must be > 0, got {div_factor} and "
                             f"{final_div_factor}")
        self.pct_start, self.anneal_strategy, self.three_phase = float(pct_start), anneal_strategy, bool(three_phase)
        self.div_factor, self.final_div_factor = float(div_factor), float(final_div_factor)
        start = 0.0
        for end, first, last in self._phases():
            if end == start:
                raise ValueError(f"OneCycleLR: pct_start={pct_start} of total_steps={self.total_steps} makes the "
                                 f"phase from {first} to {last} lr zero steps long; change pct_start or total_steps")
            start = end
        self.max_lrs = _per_group(max_lr, optimizer, "max_lr", "OneCycleLR")
        self.cycle_momentum = bool(cycle_momentum)
        if self.cycle_momentum:
            defaults = getattr(optimizer, "defaults", {})
            if "momentum" not in defaults and "betas" not in defaults:
                raise ValueError(f"OneCycleLR: cycle_momentum=True needs an optimizer with a momentum or betas "
                                 f"setting (SGD, Adam, AdamW), but {type(optimizer).__name__} has neither; "
                                 f"pass cycle_momentum=False")
            self.use_beta1 = "betas" in defaults
            self.base_momentums = _per_group(base_momentum, optimizer, "base_momentum", "OneCycleLR")
            self.max_momentums = _per_group(max_momentum, optimizer, "max_momentum", "OneCycleLR")
        self.batch_stepping = False       # True once step_batch() drives the schedule (then step() is per epoch)
        if last_epoch == -1:              # as in torch, the groups carry the rates of their cycle
            for group, top in zip(optimizer.param_groups, self.max_lrs):
                group["initial_lr"] = top / self.div_factor
                group["max_lr"] = top
                group["min_lr"] = top / self.div_factor / self.final_div_factor
        super().__init__(optimizer, last_epoch)

    @staticmethod
    def _count_steps(total_steps, epochs, steps_per_epoch):
        if total_steps is not None:
            if int(total_steps) != total_steps or total_steps < 1:
                raise ValueError(f"OneCycleLR: total_steps must be a whole number ≥ 1, got {total_steps!r}")
            return int(total_steps)
        if epochs is None or steps_per_epoch is None:
            raise ValueError("OneCycleLR: give total_steps, or both epochs and steps_per_epoch "
                             "(e.g. steps_per_epoch=len(loader)); got neither")
        for name, value in (("epochs", epochs), ("steps_per_epoch", steps_per_epoch)):
            if int(value) != value or value < 1:
                raise ValueError(f"OneCycleLR: {name} must be a whole number ≥ 1, got {value!r}")
        return int(epochs) * int(steps_per_epoch)

    def _phases(self):
        """(last step of the phase, rate factor at its start, at its end): factors of max_lr, or
        "initial"/"min" for max_lr / div_factor and for that divided again by final_div_factor."""
        warm_end = self.pct_start * self.total_steps - 1
        if self.three_phase:
            return [(warm_end, "initial", "max"), (2 * warm_end, "max", "initial"),
                    (self.total_steps - 1, "initial", "min")]
        return [(warm_end, "initial", "max"), (self.total_steps - 1, "max", "min")]

    def _anneal(self, start, end, fraction):
        if self.anneal_strategy == "cos":
            return end + (start - end) * (1 + math.cos(math.pi * fraction)) / 2
        return start + (end - start) * fraction

    def _position(self):
        """(phase index, fraction of the way through that phase) at step ``last_epoch``."""
        step = self.last_epoch
        if step > self.total_steps:
            raise ValueError(f"OneCycleLR was stepped {step} times, but its cycle has total_steps="
                             f"{self.total_steps}: make the schedule with the number of optimizer steps of the "
                             f"whole run (epochs · steps_per_epoch), and step it once per batch")
        phases, start = self._phases(), 0.0
        for i, (end, _, _) in enumerate(phases):
            if step <= end or i == len(phases) - 1:
                return i, (step - start) / (end - start)
            start = end

    def get_lr(self):
        i, fraction = self._position()
        _, first, last = self._phases()[i]
        rates = []
        for top in self.max_lrs:
            levels = {"max": top, "initial": top / self.div_factor,
                      "min": top / self.div_factor / self.final_div_factor}
            rates.append(self._anneal(levels[first], levels[last], fraction))
        return rates

    def get_momentum(self):
        """The momentum (or β1) of each group at ``last_epoch``: high where the rate is low."""
        i, fraction = self._position()
        _, first, last = self._phases()[i]
        momentums = []
        for low, high in zip(self.base_momentums, self.max_momentums):
            levels = {"max": low, "initial": high, "min": high}
            momentums.append(self._anneal(levels[first], levels[last], fraction))
        return momentums

    def _apply(self):
        super()._apply()
        if self.cycle_momentum:
            for group, momentum in zip(self.optimizer.param_groups, self.get_momentum()):
                if self.use_beta1:
                    group["betas"] = (momentum, *group["betas"][1:])
                else:
                    group["momentum"] = momentum

    def step(self):
        """Advance one batch (torch's way); only an epoch mark once ``step_batch()`` is in use."""
        if self.batch_stepping:
            return
        super().step()

    def step_batch(self):
        """Advance one batch (the training loop's way, with ``step()`` at the end of every epoch)."""
        if not self.batch_stepping and self.last_epoch > 0:
            raise RuntimeError(f"OneCycleLR was already advanced {self.last_epoch} times with step(); call "
                               f"either step() or step_batch() once per batch, not both")
        self.batch_stepping = True
        self.last_epoch += 1
        self._apply()

    def state_dict(self):
        return {**super().state_dict(), "batch_stepping": self.batch_stepping}

    def load_state_dict(self, state):
        self.batch_stepping = bool(state.get("batch_stepping", False))
        super().load_state_dict(state)
