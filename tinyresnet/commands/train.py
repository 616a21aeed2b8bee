"""``tinyresnet train``: train a model; with no arguments, ResNet-20 on the bundled digits.

    tinyresnet train                                   # the main job: ≥ 97% test accuracy in minutes on a CPU
    tinyresnet train --model resnet56 --dataset cifar10 --data-dir data --epochs 164 --schedule multistep \\
        --milestones 82 123 --batch-size 128 --weight-decay 1e-4 --device cuda       # the paper's CIFAR recipe
    tinyresnet train --resume --out runs/resnet20-digits                             # continue a run
    tinyresnet train --dataset cifar10 --download      # fetch CIFAR-10 into data/ first (once, MD5-checked)
"""

import errno
import os
import sys
import time

from ..data import DATASETS
from ..training import TrainConfig, TrainingDiverged, fit, resume_config
from ..training.config import SCHEDULES

DEFAULTS = TrainConfig()


def add_arguments(parser):
    parser.add_argument("--model", help=f"model name from tinyresnet.models.list_models() (default {DEFAULTS.model})")
    parser.add_argument("--dataset", choices=DATASETS, help=f"dataset (default {DEFAULTS.dataset})")
    parser.add_argument("--data-dir", help="cifar10: folder with the python batch files; imagefolder: the folder "
                                           "of class subfolders (default for cifar10: data)")
    parser.add_argument("--download", action="store_true",
                        help="cifar10: download the official archive into --data-dir first, unless the batch files "
                             "are there (MD5-checked, resumable; the URL can be set with TINYRESNET_CIFAR10_URL)")
    parser.add_argument("--epochs", type=int, help=f"epochs to train in all (default {DEFAULTS.epochs})")
    parser.add_argument("--batch-size", type=int, help=f"images per step (default {DEFAULTS.batch_size})")
    parser.add_argument("--lr", type=float, help=f"learning rate (default {DEFAULTS.lr})")
    parser.add_argument("--momentum", type=float, help=f"SGD momentum (default {DEFAULTS.momentum})")
    parser.add_argument("--weight-decay", type=float, help=f"L2 weight decay (default {DEFAULTS.weight_decay})")
    parser.add_argument("--nesterov", action="store_true", default=None, help="Nesterov momentum")
    parser.add_argument("--optimizer", choices=("sgd", "adam"), help="optimiser (default sgd)")
    parser.add_argument("--schedule", choices=SCHEDULES, help=f"learning-rate schedule (default {DEFAULTS.schedule})")
    parser.add_argument("--milestones", type=int, nargs="+", help="multistep: epochs where lr is multiplied by "
                                                                  "--gamma (default: 50%% and 75%% of the run)")
    parser.add_argument("--gamma", type=float, help=f"multistep factor (default {DEFAULTS.gamma})")
    parser.add_argument("--warmup-steps", type=int, help="linear learning-rate warm-up over this many iterations")
    parser.add_argument("--no-augment", dest="augment", action="store_false", default=None,
                        help="train without random crops/flips")
    parser.add_argument("--image-size", type=int, help="imagefolder: resize images to this size (default 32)")
    parser.add_argument("--grayscale", dest="channels", action="store_const", const=1,
                        help="imagefolder: read images as greyscale (default RGB)")
    parser.add_argument("--subset", type=int, help="use only the first N training and test images (quick checks)")
    parser.add_argument("--seed", type=int, help=f"random seed for weights, shuffling, augmentation "
                                                 f"(default {DEFAULTS.seed})")
    parser.add_argument("--device", choices=("cpu", "cuda"), help="where to train (default cpu)")
    parser.add_argument("--out", help="run folder for checkpoints, metrics.csv and curves.png "
                                      "(default runs/MODEL-DATASET, numbered if it exists)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last.npz")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")


def _given(args):
    """The options the user typed (argparse leaves the others at None)."""
    names = [f.name for f in TrainConfig.__dataclass_fields__.values()]
    given = {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}
    if "milestones" in given:
        given["milestones"] = tuple(given["milestones"])
    return given


def _default_out(model, dataset, resume):
    """runs/MODEL-DATASET; a new run takes the first free -2, -3, ...; --resume takes the latest."""
    base = os.path.join("runs", f"{model}-{dataset}")
    candidates = [base] + [f"{base}-{k}" for k in range(2, 1000)]
    taken = [c for c in candidates if os.path.exists(os.path.join(c, "last.npz"))]
    if resume:
        return taken[-1] if taken else base
    return next(c for c in candidates if not os.path.exists(os.path.join(c, "last.npz")))


def describe_os_error(e):
    """One line for an OSError: tinyresnet's own messages as they are, the system's with the path and a fix."""
    if e.strerror is None or e.filename is None:
        return str(e)
    fix = {errno.ENOSPC: "free some space or choose another --out", errno.EDQUOT: "free some space or choose "
           "another --out", errno.EROFS: "choose a writable --out", errno.EACCES: "choose a writable --out"}
    return f"{e.filename}: {e.strerror}" + (f"; {fix[e.errno]}" if e.errno in fix else "")


class _DownloadInterrupted(Exception):
    pass


def _download(config):
    """``--download``: fetch CIFAR-10 into the run's data folder unless it is there (DownloadError on failure)."""
    if config.dataset != "cifar10":
        raise ValueError(f"--download fetches CIFAR-10 only, but the dataset is {config.dataset!r}; add "
                         f"--dataset cifar10 or leave --download out")
    from ..data.download import download_cifar10

    data_dir = config.data_dir or "data"
    try:
        download_cifar10(data_dir, progress=config.progress)
    except KeyboardInterrupt:
        raise _DownloadInterrupted(f"the download stopped; the part fetched so far is kept in {data_dir}, "
                                   f"run the same command again to resume it") from None


def run(args):
    given = _given(args)
    given["progress"] = not args.quiet
    try:
        if args.resume:
            out = given.pop("out", None) or _default_out(given.get("model", DEFAULTS.model),
                                                         given.get("dataset", DEFAULTS.dataset), resume=True)
            config = resume_config(out, **given)
        else:
            if "out" not in given:
                given["out"] = _default_out(given.get("model", DEFAULTS.model), given.get("dataset", DEFAULTS.dataset),
                                            resume=False)
            config = TrainConfig(**given)
        if args.download:
            _download(config)
        started = time.perf_counter()
        result = fit(config, resume=args.resume)
    except (TrainingDiverged, ValueError, RuntimeError, KeyError, MemoryError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except OSError as e:                      # a missing file, a full disk, a read-only folder: one line
        print(f"error: {describe_os_error(e)}", file=sys.stderr)
        return 1
    except _DownloadInterrupted as e:
        print(f"interrupted: {e}", file=sys.stderr)
        return 130
    minutes = (time.perf_counter() - started) / 60
    if result.interrupted:
        return 128 + (result.stop_signal or 2)     # as a shell reports it: 130 after Ctrl-C, 143 after SIGTERM
    if result.history:
        print(f"done in {minutes:.1f} min: final test accuracy {100 * result.final_accuracy:.2f}%, best "
              f"{100 * result.best_accuracy:.2f}% at epoch {result.best_epoch}. Run folder {result.run_dir}: "
              f"best.npz, last.npz, metrics.csv, curves.png")
        print(f"next: tinyresnet evaluate {os.path.join(result.run_dir, 'best.npz')}")
    return 0

