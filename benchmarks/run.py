#!/usr/bin/env python
"""tinyresnet against PyTorch CPU, side by side in one run: conv layers of ResNet shapes, a CIFAR
ResNet-18 training step and ResNet-50 inference; writes benchmarks/RESULTS.md and a plot.

    python benchmarks/run.py            # the full run (15–25 minutes on 2 cores)
    python benchmarks/run.py --quick    # a smoke run: small batches, one round (2–3 minutes)

Method: every case is timed in fresh child processes (benchmarks/child.py), one per library, in
several rounds whose order alternates (tinyresnet first, then PyTorch first, ...), so that a change in
the machine's load falls on both sides alike. Each child warms up once, then times repeated runs; the
result is the median of all timed runs over all rounds. Both libraries get the same number of threads:
the number NumPy's BLAS uses (read with threadpoolctl when installed, else the CPU count), passed as
OPENBLAS_NUM_THREADS / OMP_NUM_THREADS and torch.set_num_threads. NumPy's float32 GEMM throughput is
measured the same way, in every round, as the reference for the GFLOP/s of the convolutions, and so are
each conv layer's matrix products alone (at its shapes, whole batch, no im2col): the floor for its time.
Both libraries' children run with glibc's malloc keeping freed memory (GLIBC_TUNABLES), as tinyresnet's
training loop has it (tinyresnet.kernels.keep_freed_memory); the networks are timed a second time with
glibc's default malloc, for both.
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import cases  # noqa: E402
import report  # noqa: E402

from tinyresnet.kernels import memory  # noqa: E402  (numpy only: the allocator settings to give both sides)


def blas_threads():
    """(threads NumPy's BLAS uses, how that was found)."""
    try:
        import numpy  # noqa: F401  (loads the BLAS so threadpoolctl can see it)
        from threadpoolctl import threadpool_info
        pools = [p for p in threadpool_info() if p["user_api"] == "blas"]
        if pools:
            return pools[0]["num_threads"], "threadpoolctl"
    except ImportError:
        pass
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return n, "CPU count (threadpoolctl not installed)"


# What tinyresnet.kernels.keep_freed_memory() sets with mallopt (the training loop calls it), as glibc
# tunables so that both libraries' processes get exactly the same allocator.
KEEP_FREED_MEMORY = (f"glibc.malloc.mmap_threshold={memory.MMAP_THRESHOLD_MAX}"
                     f":glibc.malloc.trim_threshold={memory.TRIM_NEVER}")


def child_env(threads, malloc):
    """The environment of a child: the thread count, and glibc's malloc keeping freed memory ("kept")
    or as it comes ("default")."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads))
    env.pop("GLIBC_TUNABLES", None)
    if malloc == "kept":
        env["GLIBC_TUNABLES"] = KEEP_FREED_MEMORY
    return env


def run_child(side, names, args, threads, malloc="kept"):
    env = child_env(threads, malloc)
    cmd = [sys.executable, str(HERE / "child.py"), side, *names, "--threads", str(threads),
           "--repeats", str(args.repeats), "--min-time", str(args.min_time)] + (["--quick"] if args.quick else [])
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child failed: {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    for r in out["results"]:
        if malloc == "default":
            r["case"] += report.DEFAULT_MALLOC
        print(f"  {side:>10}  {r['case']:<34} {1e3 * statistics.median(r['times']):9.1f} ms", flush=True)
    return out


def run_profile(side, args, threads):
    env = child_env(threads, "kept")
    cmd = [sys.executable, str(HERE / "profile_step.py"), "--side", side, "--threads", str(threads), "--json"]
    proc = subprocess.run(cmd + (["--quick"] if args.quick else []), env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"profile failed: {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small batches, one round: a smoke run")
    parser.add_argument("--rounds", type=int, help="rounds of alternating children (default 3, quick 1)")
    parser.add_argument("--repeats", type=int, help="timed runs per case and child (default 5, quick 2)")
    parser.add_argument("--min-time", type=float, help="seconds of timed runs per case and child (default 1)")
    parser.add_argument("--only", nargs="*", default=None, help="case ids containing any of these strings")
    parser.add_argument("--no-torch", action="store_true", help="time tinyresnet only")
    parser.add_argument("--no-profile", action="store_true", help="skip the per-op profile of the training step")
    parser.add_argument("--malloc", choices=["both", "kept"], default="both",
                        help="kept: every child's glibc malloc keeps freed memory (as tinyresnet's training loop "
                             "has it); both (default): the networks are also timed with glibc's default malloc")
    parser.add_argument("--out", default=str(HERE / "RESULTS.md"),
                        help="the Markdown report; the plot (.png) and the raw measurements (.json) go beside it")
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite the report and plot from the .json of an earlier run, measuring nothing")
    args = parser.parse_args()
    out = Path(args.out)
    if args.report_only:
        raw = json.loads(out.with_suffix(".json").read_text())
        report.write(out, raw["runs"], raw["meta"], raw["profiles"])
        print(f"rewrote {out} and {out.with_suffix('.png')} from {out.with_suffix('.json')}")
        return
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.repeats = args.repeats or (2 if args.quick else 5)
    args.min_time = args.min_time if args.min_time is not None else (0.0 if args.quick else 1.0)

    names = [n for n in cases.case_names() if args.only is None or any(s in n for s in args.only)]
    conv_names = [n for n in names if ":" in n]
    net_names = [n for n in names if ":" not in n]
    sides = ["tinyresnet"] if args.no_torch else ["tinyresnet", "torch"]
    threads, threads_how = blas_threads()
    started = datetime.datetime.now().astimezone()
    load_before = os.getloadavg()
    print(f"{len(names)} cases, {args.rounds} round(s), {threads} thread(s) ({threads_how})", flush=True)

    runs, info = [], {}
    for r in range(args.rounds):
        order = sides if r % 2 == 0 else sides[::-1]
        print(f"round {r + 1}/{args.rounds}", flush=True)
        runs += run_child("gemm", ["gemm"], args, threads)["results"]
        groups = ([conv_names] if conv_names else []) + [[n] for n in net_names]
        for group in groups:
            mallocs = ["kept", "default"] if args.malloc == "both" and group[0] in net_names else ["kept"]
            for malloc in mallocs:
                plain = ["tinyresnet-plain"] if malloc == "kept" and group[0] == report.STEP else []
                for side in order + plain:        # the plain tier's step beside the fast one's, for reference
                    result = run_child(side, group, args, threads, malloc)
                    runs += result["results"]
                    info[side] = result["info"]
        if conv_names:
            runs += run_child("blas", conv_names, args, threads)["results"]
    profiles = {}
    if not args.no_profile and "resnet18_cifar_train_step" in net_names:
        print("per-op profile of the training step", flush=True)
        profiles = {side: run_profile(side, args, threads) for side in sides}

    meta = dict(started=started.isoformat(timespec="seconds"), load_before=load_before, load_after=os.getloadavg(),
                threads=threads, threads_how=threads_how, rounds=args.rounds, repeats=args.repeats,
                min_time=args.min_time, quick=args.quick, command=" ".join(["python"] + sys.argv),
                machine=report.machine(), python=platform.python_version(), info=info,
                env={k: v for k, v in os.environ.items() if k.startswith(("OPENBLAS", "OMP_", "MKL_", "GOMP"))},
                malloc=args.malloc, glibc_tunables=KEEP_FREED_MEMORY)
    out.with_suffix(".json").write_text(json.dumps(dict(runs=runs, meta=meta, profiles=profiles), indent=1))
    report.write(out, runs, meta, profiles)
    print(f"wrote {out}, {out.with_suffix('.png')} and {out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
