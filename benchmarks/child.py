"""Run benchmark cases for one side in this (fresh) process and print the results as JSON.

    python benchmarks/child.py SIDE CASE [CASE ...] [--quick] [--repeats R] [--min-time S] [--threads T]

SIDE is "tinyresnet", "torch", "gemm" (NumPy's float32 matrix product, the BLAS reference) or "blas" (a
conv layer's matrix products alone, at its shapes: the floor for tinyresnet's conv). run.py
starts one of these per side and round, so the two libraries never share a process (their thread pools
would otherwise compete for the two cores) and peak memory can be read per process.

Peak memory: before a case, the kernel's high-water mark of resident memory is reset (writing 5 to
/proc/self/clear_refs); after it, VmHWM − VmRSS(before) is the extra memory the case needed at its
peak, whoever allocated it (NumPy, OpenBLAS, PyTorch's allocator, oneDNN). Where the reset is not
allowed, getrusage's ru_maxrss (the process's peak since it started) is reported instead, and marked.
"""

import argparse
import contextlib
import gc
import json
import os
import resource
import sys
import time

import numpy as np


def rss_kib(field):
    """VmRSS or VmHWM of this process, in KiB, from /proc/self/status (None off Linux)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def time_it(step, repeats, min_time):
    """Run ``step`` once to warm up, then at least ``repeats`` times and ``min_time`` seconds; the
    wall-clock seconds of each timed run."""
    step()
    times = []
    start = time.perf_counter()
    while len(times) < repeats or (time.perf_counter() - start < min_time and len(times) < 50):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return times


def gemm_step(n):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    out = np.empty((n, n), dtype=np.float32)
    return (lambda: np.matmul(a, b, out=out)), 2 * n ** 3


PLAIN = "tinyresnet-plain"      # tinyresnet on its plain tier: the readable ops, BLAS's own threads
USER = "tinyresnet-userloop"    # a user's own loop: the default tier, no tinyresnet-specific calls
TINY = ("tinyresnet", PLAIN, USER)


def run_case(name, side, args):
    gc.collect()
    exact = reset_peak()
    before = rss_kib("VmRSS")
    if side == "gemm":
        step, flops = gemm_step(1024 if args.quick else 2048)
    else:
        from cases import build
        step, flops = build(name, "tinyresnet" if side in TINY else side, args.quick)
    times = time_it(step, args.repeats, args.min_time)
    peak = rss_kib("VmHWM") if exact else None
    result = dict(case=name, side=side, times=times, flops=flops,
                  maxrss_kib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  rss_before_kib=before, peak_kib=peak,
                  peak_method="VmHWM after clear_refs" if exact else "ru_maxrss (process peak)")
    del step
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("side", choices=[*TINY, "torch", "gemm", "blas"])
    parser.add_argument("cases", nargs="+")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--min-time", type=float, default=1.0)
    parser.add_argument("--threads", type=int, required=True)
    args = parser.parse_args()
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    if args.side == "torch":
        import torch
        torch.set_num_threads(args.threads)
    settings = contextlib.nullcontext()
    # as the training loop has it: on the fast tier the kernels' own threads, BLAS on one each; on the plain
    # tier, BLAS's own threads; a user's loop (USER) gets no settings at all
    if args.side in TINY:
        import tinyresnet
    if args.side in ("tinyresnet", PLAIN):
        import tinyresnet
        from tinyresnet import tiers
        tinyresnet.use_kernels("plain" if args.side == PLAIN else "fast")
        settings = tiers.compute_settings(args.threads)
    with settings:
        results = [run_case(name, args.side, args) for name in args.cases]
        if args.side in TINY:
            from tinyresnet.kernels import get_num_threads
            threads_used = get_num_threads()
    info = {}
    try:
        from threadpoolctl import threadpool_info
        info["threadpools"] = [{k: p.get(k) for k in ("internal_api", "version", "num_threads", "architecture",
                                                      "threading_layer")} for p in threadpool_info()]
    except ImportError:
        info["threadpools"] = None
    if args.side in TINY:
        info["tinyresnet_threads"] = threads_used
        info["kernels"] = tinyresnet.get_kernels()
    if args.side == "torch":
        import torch
        info["torch_threads"] = torch.get_num_threads()
        info["torch_version"] = torch.__version__
    print(json.dumps(dict(results=results, info=info)))


if __name__ == "__main__":
    main()
