"""Optimisers and learning-rate schedules with the update rules and interface of torch.optim.

>>> from tinyresnet.optim import SGD, lr_scheduler
>>> optimizer = SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
>>> scheduler = lr_scheduler.MultiStepLR(optimizer, milestones=[30, 60, 80], gamma=0.1)
>>> # per batch: optimizer.zero_grad(); loss.backward(); optimizer.step()   per epoch: scheduler.step()

Also AdamW (decoupled weight decay), StepLR, ExponentialLR and OneCycleLR (stepped once per batch).
"""

from . import lr_scheduler
from .adam import Adam, AdamW
from .lr_scheduler import (
    ConstantLR,
    CosineAnnealingLR,
    ExponentialLR,
    LinearWarmup,
    LRScheduler,
    MultiStepLR,
    OneCycleLR,
    StepLR,
)
from .optimizer import Optimizer
from .sgd import SGD

__all__ = ["SGD", "Adam", "AdamW", "ConstantLR", "CosineAnnealingLR", "ExponentialLR", "LRScheduler", "LinearWarmup",
           "MultiStepLR", "OneCycleLR", "Optimizer", "StepLR", "lr_scheduler"]
