"""Does 16.9× fewer multiply-accumulates make a bottleneck 16.9× faster? A timing on the engine.

``measure()`` times the forward and backward pass of ``BasicBlock(256, 256)`` and
``Bottleneck(256, 64)`` (the pair §3.5 compares) on one map size at a time and returns the measured
speed-up beside the ratio of their multiply-accumulates. Times vary with the machine and its load,
so the errata page shows the run recorded in ``RECORDED`` (made with
``python -m tinyresnet.docverify.speed``), never a fresh one; tutorial 13 measures it in depth.
"""

import platform
import time

import numpy as np

from ..autograd import Tensor
from ..models import BasicBlock, Bottleneck
from ..summary import summarize

# python -m tinyresnet.docverify.speed --repeats 5, OPENBLAS_NUM_THREADS=1, fast kernels, float32, batch 1
RECORDED = {
    "machine": "2-core AMD EPYC virtual machine shared with other jobs (load average about 4), one BLAS thread",
    "rows": [
        {"size": 14, "basic_ms": 47.8, "bottleneck_ms": 4.2, "speedup": 11.29, "mac_ratio": 16.94},
        {"size": 28, "basic_ms": 125.8, "bottleneck_ms": 18.0, "speedup": 6.98, "mac_ratio": 16.94},
        {"size": 56, "basic_ms": 460.6, "bottleneck_ms": 79.5, "speedup": 5.79, "mac_ratio": 16.94},
    ],
    "other_runs": "a second run (median of 7, heavier load) gave 6.26×, 6.70× and 10.02×",
}


def block_pair(channels=256, width=64):
    return BasicBlock(channels, channels), Bottleneck(channels, width)


def time_step(block, x, repeats):
    """The median wall time of ``repeats`` forward + backward passes, after one warm-up pass."""
    times = []
    for n in range(repeats + 1):
        inputs = Tensor(x, requires_grad=True)
        start = time.perf_counter()
        block(inputs).sum().backward()
        if n:
            times.append(time.perf_counter() - start)
    return float(np.median(times))


def measure(sizes=(14, 28, 56), repeats=3, batch=1, channels=256, width=64, seed=0):
    """[{size, basic_ms, bottleneck_ms, speedup, mac_ratio}] for each map size (H = W = size)."""
    rows = []
    for size in sizes:
        basic, bottleneck = block_pair(channels, width)
        macs = [summarize(b, (channels, size, size)).total_macs for b in (basic, bottleneck)]
        x = np.random.default_rng(seed).normal(size=(batch, channels, size, size)).astype(np.float32)
        basic.train(), bottleneck.train()
        t_basic, t_bneck = time_step(basic, x, repeats), time_step(bottleneck, x, repeats)
        rows.append({"size": size, "basic_ms": round(1e3 * t_basic, 1), "bottleneck_ms": round(1e3 * t_bneck, 1),
                     "speedup": round(t_basic / t_bneck, 2), "mac_ratio": round(macs[0] / macs[1], 2)})
    return rows


def main(argv=None):
    import argparse
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sizes", type=int, nargs="+", default=[14, 28, 56])
    args = parser.parse_args(argv)
    print(f"{platform.processor() or platform.machine()}, forward + backward, batch 1, median of {args.repeats}")
    for row in measure(tuple(args.sizes), args.repeats):
        print(row)


if __name__ == "__main__":
    main()
