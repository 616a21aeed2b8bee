#!/usr/bin/env python
"""Is a commit faster or slower than another? The same cases, tinyresnet at two commits and PyTorch, side by side.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/ab_commits.py --base REV [--rounds 5]
        [--cases resnet18_cifar_train_step resnet20_train_step_b128] [--out FILE.md]

The base commit is checked out in a temporary git worktree; each round runs one fresh child process
(benchmarks/child.py, the Trainer's settings) per side: tinyresnet as it is in this work tree, tinyresnet at
the base commit (its package put first on PYTHONPATH), and torch, in an order that rotates from round to
round. On a shared machine whose speed drifts from minute to minute, the ratio of two sides measured in the
same round is what can be trusted: the report gives each round's ratios and their median and spread.
"""

import argparse
import contextlib
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from run import child_env  # noqa: E402


@contextlib.contextmanager
def worktree(rev):
    """A temporary checkout of ``rev`` (git worktree), removed afterwards."""
    folder = tempfile.mkdtemp(prefix="tinyresnet-base-")
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", folder, rev], check=True,
                   capture_output=True)
    try:
        yield Path(folder)
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", folder], capture_output=True)


def run_side(side, cases, threads, args, package_root=None):
    """One child process: ``side`` is "tinyresnet" or "torch"; ``package_root`` puts another tinyresnet first."""
    env = child_env(threads, "kept")
    if package_root is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(package_root), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    cmd = [sys.executable, str(HERE / "child.py"), side, *cases, "--threads", str(threads),
           "--repeats", str(args.repeats), "--min-time", str(args.min_time)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child failed: {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return {r["case"]: 1e3 * statistics.median(r["times"]) for r in out["results"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the commit to compare with (any git revision)")
    parser.add_argument("--cases", nargs="+", default=["resnet18_cifar_train_step", "resnet20_train_step_b128"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--min-time", type=float, default=0.0)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--out", default=None, help="write the report here (Markdown) as well as printing it")
    args = parser.parse_args()
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    base = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", args.base], capture_output=True,
                          text=True, check=True).stdout.strip()
    load_before = os.getloadavg()
    sides = ["now", "base", "torch"]
    times = {side: {case: [] for case in args.cases} for side in sides}
    with worktree(args.base) as base_root:
        for r in range(args.rounds):
            for side in sides[r % 3:] + sides[:r % 3]:               # the order rotates
                got = run_side("torch" if side == "torch" else "tinyresnet", args.cases, args.threads, args,
                               base_root if side == "base" else None)
                for case, ms in got.items():
                    times[side][case].append(ms)
                print(f"round {r + 1} {side:>5}: " + ", ".join(f"{c} {ms:.0f} ms" for c, ms in got.items()),
                      flush=True)
    lines = [f"# A/B: tinyresnet at {head} (work tree) against {base}, with PyTorch CPU",
             "", f"- date: {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}; command: "
             f"`python benchmarks/ab_commits.py {' '.join(sys.argv[1:])}`",
             f"- {args.rounds} rounds, one child process per side per round (order rotating), {args.threads} threads, "
             f"the Trainer's settings; load average before {', '.join(f'{v:.2f}' for v in load_before)}, after "
             f"{', '.join(f'{v:.2f}' for v in os.getloadavg())}", "",
             "| case | now ms | base ms | torch ms | now / base per round | median | now / torch | base / torch |",
             "| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |"]
    for case in args.cases:
        now, old, torch = (times[s][case] for s in sides)
        per_round = [a / b for a, b in zip(now, old)]
        lines.append(f"| {case} | {statistics.median(now):.0f} | {statistics.median(old):.0f} | "
                     f"{statistics.median(torch):.0f} | {' '.join(f'{x:.2f}' for x in per_round)} | "
                     f"{statistics.median(per_round):.2f} | "
                     f"{statistics.median([a / b for a, b in zip(now, torch)]):.2f} | "
                     f"{statistics.median([a / b for a, b in zip(old, torch)]):.2f} |")
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        Path(args.out).write_text(report)


if __name__ == "__main__":
    main()
