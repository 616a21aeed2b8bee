"""Learning-rate schedules, as torch.optim.lr_scheduler: call ``step()`` once per epoch.

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
