"""``TrainConfig``: everything that defines a training run, with the main job as its defaults."""

import dataclasses
import json
import math
from dataclasses import dataclass

SCHEDULES = ("cosine", "multistep", "constant")
OPTIMIZERS = ("sgd", "adam")
# what may differ when a run is resumed (everything else must match the saved config)
RESUMABLE_CHANGES = ("epochs", "device", "out", "progress", "prefetch", "eval_batch_size")
# settings that `tinyresnet train` has no option for (errors name them as the fields they are)
NO_CLI_OPTION = ("warmup_factor", "eval_batch_size", "prefetch")


@dataclass
class TrainConfig:
    """Everything that defines a run. The defaults are the main job: ResNet-20 on the bundled digits."""

    model: str = "resnet20"
    dataset: str = "digits"            # digits | cifar10 | imagefolder | synthetic
    data_dir: str | None = None        # CIFAR-10 batch files, or the image folder
    epochs: int = 30
    batch_size: int = 64
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = False
    optimizer: str = "sgd"             # sgd | adam
    schedule: str = "cosine"           # cosine | multistep | constant
    milestones: tuple = ()             # multistep epochs; empty: at 50% and 75% of the run (as the paper)
    gamma: float = 0.1                 # multistep factor
    warmup_steps: int = 0              # linear warm-up over this many iterations (0: none)
    warmup_factor: float = 0.1         # the warm-up starts at lr · warmup_factor
    augment: bool = True               # random crops (and flips for photos); see default_augmentation
    image_size: int | None = None      # imagefolder/synthetic: images are resized to this (default 32/8)
    channels: int | None = None        # imagefolder/synthetic: 1 (greyscale) or 3 (RGB)
    subset: int | None = None          # use only the first N training and test images (quick checks)
    seed: int = 0
    device: str = "cpu"
    out: str = "runs/resnet20-digits"
    eval_batch_size: int = 500
    prefetch: int = 2                  # batches prepared ahead by a background thread
    progress: bool = True              # progress bar and one line per epoch

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; choose one of {', '.join(SCHEDULES)}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"--lr: the learning rate must be positive and finite, got {self.lr!r}")
        for name in ("epochs", "batch_size", "eval_batch_size"):
            self._check(name, getattr(self, name) >= 1, "must be at least 1")
        self._check("subset", self.subset is None or self.subset >= 1,
                    "must be at least 1 (the number of images to keep; leave it out to use them all)")
        self._check("image_size", self.image_size is None or self.image_size >= 1,
                    "must be at least 1 pixel (leave it out for the dataset's default)")
        for name in ("warmup_steps", "prefetch"):
            self._check(name, getattr(self, name) >= 0, "must be 0 or more")
        for name in ("momentum", "weight_decay"):
            self._check(name, math.isfinite(getattr(self, name)) and getattr(self, name) >= 0,
                        "must be finite and 0 or more")
        self._check("gamma", math.isfinite(self.gamma) and self.gamma > 0, "must be positive and finite")
        self._check("warmup_factor", 0 < self.warmup_factor <= 1,
                    "must be in (0, 1]: the warm-up starts at lr · warmup_factor")
        self.milestones = tuple(int(m) for m in self.milestones)
        self._check("milestones", all(m >= 0 for m in self.milestones), "must be epoch numbers, 0 or more")

    def _check(self, name, ok, rule):
        """Raise ValueError naming the setting as ``tinyresnet train`` spells it, and its value, unless ``ok``."""
        if not ok:
            option = name if name in NO_CLI_OPTION else "--" + name.replace("_", "-")
            raise ValueError(f"{option} {rule}, got {getattr(self, name)!r}")

    def to_dict(self):
        """The settings as saved in checkpoints and config.json (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))


def config_conflicts(saved, wanted):
    """The settings of ``wanted`` (a dict) that differ from the ``saved`` config and may not change on resume."""
    wanted = json.loads(json.dumps(wanted))
    return {k: v for k, v in wanted.items() if k not in RESUMABLE_CHANGES and v != saved.get(k)}


def describe_conflicts(saved, conflicts):
    items = "; ".join(f"{k}={v!r} (the run has {saved.get(k)!r})" for k, v in conflicts.items())
    return (f"a resumed run keeps its configuration, but these differ: {items}. Only "
            f"{', '.join(RESUMABLE_CHANGES)} may change; start a new run (another --out) to change the rest")
