"""A short real training run in its own process, for tests/test_checkpoint_safety.py, that can kill
itself with SIGKILL at an injected point: just before or just after the k-th file rename (the
moment ``atomic_write`` makes a file visible), so a test can stop it between any two writes.

    python tests/kill_driver.py RUN_DIR [--resume] [--epochs E] [--kill-at K --when before|after]

Prints the number of renames it made when it ends normally. ``curves.png`` is written through the
same ``atomic_write`` as by the real ``plot_curves``, but holds the history as text: matplotlib
would take 90% of the run's second, and the kills are meant to land among the checkpoints. SIGKILL
gives the process no chance to clean up, as a power cut, the kernel's out-of-memory killer or ``kill -9`` would.
"""

import argparse
import json
import os
import signal

import tinyresnet.serialization as serialization
import tinyresnet.training.loop as loop
from tinyresnet import nn
from tinyresnet.training import TrainConfig, fit


def tiny_net(config, num_classes, in_channels, width=4):
    """conv-BN-ReLU and a linear layer: BN buffers in the checkpoint, trains in a fraction of a second."""
    nn.init.manual_seed(config.seed)
    return nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
                         nn.Flatten(), nn.Linear(width * 8 * 8, num_classes))


def plot_curves_as_text(history, path):
    with serialization.atomic_write(path, "w") as f:
        json.dump(history, f)


def config(run_dir, epochs):
    return TrainConfig(model="tiny", dataset="synthetic", epochs=epochs, batch_size=48, lr=0.05, prefetch=0,
                       progress=False, out=run_dir)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--kill-at", type=int, default=None, help="the rename (counted from 1) to die at")
    parser.add_argument("--when", choices=("before", "after"), default="after")
    args = parser.parse_args()
    loop.build_model = tiny_net
    loop.plot_curves = plot_curves_as_text
    renames, real_replace = [0], os.replace

    def replace(src, dst):
        renames[0] += 1
        if renames[0] == args.kill_at and args.when == "before":
            os.kill(os.getpid(), signal.SIGKILL)          # the temporary file is complete, not yet renamed
        real_replace(src, dst)
        if renames[0] == args.kill_at and args.when == "after":
            os.kill(os.getpid(), signal.SIGKILL)          # between this write and the next
    serialization.os = _Proxy(os, replace)
    fit(config(args.run_dir, args.epochs), resume=args.resume)
    print(renames[0])


class _Proxy:
    """``os`` as serialization sees it, with ``replace`` swapped for the one with the kill point."""

    def __init__(self, module, replace):
        self._module, self.replace = module, replace

    def __getattr__(self, name):
        return getattr(self._module, name)


if __name__ == "__main__":
    main()
