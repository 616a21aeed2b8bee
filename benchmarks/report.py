"""Summarise benchmark runs: medians, ratios, GFLOP/s, peak memory, the targets; Markdown and a plot."""

import datetime
import os
import platform
import statistics
from collections import defaultdict
from pathlib import Path

TARGET_STEP_RATIO, STRETCH_STEP_RATIO = 1.5, 1.2
TARGET_GEMM_SHARE = 0.60
TARGET_MEMORY_RATIO = 2.0
BIG_STEP, TARGET_BIG_MEMORY_RATIO = "resnet50_train_step_224", 1.3     # issue 19: ResNet-50's step at 224, batch 64
STEP = "resnet18_cifar_train_step"
DEFAULT_MALLOC = " (default malloc)"      # the suffix of a case timed with glibc's default malloc


def machine():
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    mem = None
    try:
        with open("/proc/meminfo") as f:
            mem = int(next(line for line in f if line.startswith("MemTotal")).split()[1]) / 2 ** 20
    except (OSError, StopIteration):
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return dict(cpu=cpu, cores=os.cpu_count(), usable=usable, mem_gib=mem, os=platform.platform())


def summarise(runs):
    """{(case, side): {ms, round_ms, flops, gflops, work_mib, maxrss_mib, peak_method}} over all rounds."""
    groups = defaultdict(list)
    for r in runs:
        groups[(r["case"], r["side"])].append(r)
    table = {}
    for key, rs in groups.items():
        times = [t for r in rs for t in r["times"]]
        ms = 1e3 * statistics.median(times)
        flops = rs[0]["flops"]
        work = [(r["peak_kib"] if r["peak_kib"] is not None else r["maxrss_kib"]) - r["rss_before_kib"]
                for r in rs if r["rss_before_kib"] is not None]
        table[key] = dict(ms=ms, best_ms=1e3 * min(times), n=len(times),
                          round_ms=[1e3 * statistics.median(r["times"]) for r in rs],
                          flops=flops, gflops=flops / ms / 1e6 if flops else None,
                          work_mib=statistics.median(work) / 1024 if work else None,
                          maxrss_mib=max(r["maxrss_kib"] for r in rs) / 1024, peak_method=rs[0]["peak_method"])
    return table


def _fmt(v, spec=".1f", none="–"):
    return none if v is None else format(v, spec)


def targets(table, gemm):
    """[(target, measured, met)] for the three targets of issue 7, where the cases were run."""
    rows = (_step_targets(table, STEP, "")
            + _step_targets(table, STEP + DEFAULT_MALLOC, ", both with glibc's default malloc"))
    if gemm:
        for case in _case_order():
            row = table.get((case, "tinyresnet"))
            if row and case.startswith("conv3x3") and case.endswith("fwd+bwd"):
                share = row["gflops"] / gemm
                rows.append((f"{case} at ≥ {TARGET_GEMM_SHARE:.0%} of GEMM",
                             f"{share:.0%} ({row['gflops']:.0f} GFLOP/s)",
                             "yes" if share >= TARGET_GEMM_SHARE else f"no: {TARGET_GEMM_SHARE - share:.0%} short"))
    t, p = table.get((BIG_STEP, "tinyresnet")), table.get((BIG_STEP, "torch"))
    if t and p and t["work_mib"] and p["work_mib"]:
        m = t["work_mib"] / p["work_mib"]
        rows.append((f"{BIG_STEP} peak memory ≤ {TARGET_BIG_MEMORY_RATIO:g}× PyTorch's",
                     f"{m:.2f}× ({t['work_mib']:.0f} / {p['work_mib']:.0f} MiB)",
                     "yes" if m <= TARGET_BIG_MEMORY_RATIO else f"no: {m / TARGET_BIG_MEMORY_RATIO:.2f}× over"))
    return rows


def _step_targets(table, case, how):
    """The training step's time and memory targets, for the step timed as ``case``."""
    t, p = table.get((case, "tinyresnet")), table.get((case, "torch"))
    if not (t and p):
        return []
    ratio, best = t["ms"] / p["ms"], t["best_ms"] / p["best_ms"]
    shown = f"{ratio:.2f}× (best runs: {best:.2f}×)"
    met = "yes" if ratio <= TARGET_STEP_RATIO else f"no: {ratio / TARGET_STEP_RATIO:.2f}× over"
    stretch = "yes" if ratio <= STRETCH_STEP_RATIO else f"no: {ratio / STRETCH_STEP_RATIO:.2f}× over"
    rows = [(f"training step ≤ {TARGET_STEP_RATIO}× PyTorch (medians{how})", shown, met),
            (f"stretch: training step ≤ {STRETCH_STEP_RATIO}× PyTorch{how}", shown, stretch)]
    if t["work_mib"] and p["work_mib"]:
        m = t["work_mib"] / p["work_mib"]
        rows.append((f"training-step peak memory ≤ {TARGET_MEMORY_RATIO:g}× PyTorch's{how}",
                     f"{m:.2f}× ({t['work_mib']:.0f} / {p['work_mib']:.0f} MiB)",
                     "yes" if m <= TARGET_MEMORY_RATIO else f"no: {m / TARGET_MEMORY_RATIO:.2f}× over"))
    return rows


def write(path, runs, meta, profiles):
    table = summarise(runs)
    gemm_row = table.get(("gemm", "gemm"))
    gemm = gemm_row["gflops"] if gemm_row else None
    L = [f"# tinyresnet vs PyTorch CPU{' (quick smoke run: small batches, not results)' if meta['quick'] else ''}", ""]
    L += ["Generated by `benchmarks/run.py`; see benchmarks/README.md for the method.", ""]
    m = meta["machine"]
    torch_info = meta["info"].get("torch", {})
    L += ["## The run", "",
          f"- date: {meta['started']}; command: `{meta['command']}`",
          f"- machine: {m['cpu']}, {m['cores']} logical CPUs ({m['usable']} usable), "
          f"{_fmt(m['mem_gib'], '.0f')} GiB RAM; {m['os']}",
          f"- load average (1, 5, 15 min) before: {', '.join(f'{x:.2f}' for x in meta['load_before'])}; after: "
          f"{', '.join(f'{x:.2f}' for x in meta['load_after'])} (other processes were sharing the machine "
          f"whenever the 1-minute value is well above 0)",
          f"- Python {meta['python']}; NumPy {_version('numpy')}; PyTorch {torch_info.get('torch_version', '–')}",
          f"- threads: {meta['threads']} for both libraries ({meta['threads_how']}); PyTorch reported "
          f"{torch_info.get('torch_threads', '–')}; tinyresnet reported "
          f"{meta['info'].get('tinyresnet', {}).get('tinyresnet_threads', '–')} of its own, as its training loop "
          f"sets them on the fast tier (`kernels.num_threads`: its convolutions' slices on its threads, BLAS on "
          f"one thread each)",
          "- environment: " + (", ".join(f"{k}={v}" for k, v in sorted(meta["env"].items()))
                               or "no OPENBLAS_/OMP_/MKL_ variables set"),
          f"- allocator: both libraries' processes with GLIBC_TUNABLES={meta.get('glibc_tunables', '–')} "
          f"(glibc keeps freed memory: no page faults from one step to the next)"
          + ("; the networks also with glibc's default malloc" if meta.get("malloc") == "both" else "")]
    for side, info in meta["info"].items():
        for pool in info.get("threadpools") or []:
            L.append(f"- {side} process thread pool: {pool['internal_api']} {pool.get('version') or ''} "
                     f"{pool['num_threads']} threads" + (f", kernel {pool['architecture']}" if pool.get("architecture")
                                                         else ""))
    L += [f"- rounds: {meta['rounds']}, each case ≥ {meta['repeats']} timed runs and ≥ {meta['min_time']} s per "
          f"child after one warm-up run; times are medians of all timed runs", ""]
    if gemm:
        n = round((gemm_row["flops"] / 2) ** (1 / 3))
        per_round = ", ".join(f"{gemm_row['flops'] / t / 1e6:.0f}" for t in gemm_row["round_ms"])
        L += [f"NumPy float32 GEMM ({n}×{n} · {n}×{n}, same run): **{gemm:.0f} GFLOP/s** (per round: {per_round}).", ""]
    L += ["## Targets", "", "| target | measured | met |", "| --- | --- | --- |"]
    L += [f"| {a} | {b} | {c} |" for a, b, c in targets(table, gemm)] + [""]
    L += _conv_table(table, gemm) + _net_table(table) + _plain_tier(table) + _profiles(profiles)
    notes = Path(path).with_name("NOTES.md")
    if notes.exists() and not meta["quick"]:
        L += ["## Analysis", "", notes.read_text().strip(), ""]
    Path(path).write_text("\n".join(L) + "\n")
    plot(table, gemm, Path(path).with_suffix(".png"), meta)


def _version(module):
    try:
        return __import__(module).__version__
    except ImportError:
        return "–"


def _pair(table, case):
    return table.get((case, "tinyresnet")), table.get((case, "torch"))


def _conv_table(table, gemm):
    cases = sorted({c for c, s in table if ":" in c}, key=lambda c: list(_case_order()).index(c))
    if not cases:
        return []
    L = ["## Convolution layers", "",
         "Batch 128 (the stem: 32), float32, no bias. fwd: forward under no_grad; fwd+bwd: forward and backward "
         "(input and weight gradients; the stem's input needs none). Each library gets its inputs in the layout it "
         "produces inside a network: PyTorch NCHW, tinyresnet channels-last in memory (its conv output layout), "
         "except the stem's image, NCHW for both. GFLOP/s count 2 per multiply-accumulate of the forward, "
         "input-gradient and weight-gradient products; \"of GEMM\" divides tinyresnet's by NumPy's GEMM "
         "throughput above.", "",
         "\"products alone\" times the layer's matrix products by themselves (NumPy, whole batch, random matrices, "
         "no im2col): what is left of tinyresnet's time above it is im2col, col2im, copies and bookkeeping.", "",
         "| layer | phase | tinyresnet ms | PyTorch ms | ratio | products alone ms | tinyresnet GFLOP/s "
         "| PyTorch GFLOP/s | of GEMM |", "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for case in cases:
        t, p = _pair(table, case)
        b = table.get((case, "blas"))
        layer, phase = case.split(":")
        ratio = t["ms"] / p["ms"] if t and p else None
        share = t["gflops"] / gemm if t and gemm else None
        L.append(f"| {layer} | {phase} | {_fmt(t and t['ms'])} | {_fmt(p and p['ms'])} | {_fmt(ratio, '.2f')} | "
                 f"{_fmt(b and b['ms'])} | {_fmt(t and t['gflops'], '.0f')} | {_fmt(p and p['gflops'], '.0f')} | "
                 f"{_fmt(share and 100 * share, '.0f')}% |")
    return L + [""]


def _case_order():
    import cases
    return cases.case_names()


def _net_table(table):
    nets = [c + suffix for c in _case_order() if ":" not in c for suffix in ("", DEFAULT_MALLOC)
            if any(k[0] == c + suffix for k in table)]
    if not nets:
        return []
    L = ["## Networks", "",
         "Peak memory is the extra resident memory at the peak of the case's runs over the process's memory just "
         "before them (after imports, model and data): `VmHWM` after resetting it through /proc/self/clear_refs, "
         "minus `VmRSS` before, in a fresh process per library and round (tracemalloc would miss BLAS, oneDNN and "
         "PyTorch's allocations). The whole process's peak (`ru_maxrss`, libraries included) is in parentheses.", "",
         "Both libraries run with glibc's malloc keeping freed memory for reuse (the GLIBC_TUNABLES of the run, "
         "what tinyresnet's training loop sets through `keep_freed_memory`); the rows marked \"default malloc\" "
         "time both with glibc's defaults, under which every step maps and zeroes its memory anew.", "",
         "| case | tinyresnet ms | PyTorch ms | ratio | ratio of best runs | tinyresnet GFLOP/s "
         "| peak memory tinyresnet | peak memory PyTorch | memory ratio |",
         "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for case in nets:
        t, p = _pair(table, case)
        flops = p["flops"] if p else None
        gflops = flops / t["ms"] / 1e6 if t and flops else None
        mem = lambda r: f"{r['work_mib']:.0f} MiB ({r['maxrss_mib']:.0f})" if r and r["work_mib"] is not None else "–"  # noqa: E731
        mratio = t["work_mib"] / p["work_mib"] if t and p and t["work_mib"] and p["work_mib"] else None
        ratio = t["ms"] / p["ms"] if t and p else None
        best = t["best_ms"] / p["best_ms"] if t and p else None
        L.append(f"| {case} | {_fmt(t and t['ms'])} | {_fmt(p and p['ms'])} | {_fmt(ratio, '.2f')} | "
                 f"{_fmt(best, '.2f')} | {_fmt(gflops, '.0f')} | {mem(t)} | {mem(p)} | {_fmt(mratio, '.2f')} |")
    spread = [f"{c} {s}: {', '.join(f'{x:.0f}' for x in table[(c, s)]['round_ms'])} ms"
              for c in nets for s in ("tinyresnet", "torch") if (c, s) in table]
    return L + ["", "\"Ratio of best runs\" divides the fastest run of each library: the closest this run gets to an "
                "idle machine, since other processes only ever slow a run down. Per-round medians: "
                + "; ".join(spread) + ".", ""]


def _plain_tier(table):
    """The training step on the plain tier (the readable ops of tinyresnet/ops), beside the fast tier's."""
    plain, fast, torch = (table.get((STEP, side)) for side in ("tinyresnet-plain", "tinyresnet", "torch"))
    if not plain or not fast:
        return []
    L = ["## The plain tier", "",
         "The same training step with `tinyresnet.use_kernels(\"plain\")`: the ops as the handout derives them "
         "(the whole batch's columns at once, kept for backward, dx by col2im), on BLAS's own threads.", "",
         "| case | plain tier ms | fast tier ms | plain / fast | plain / PyTorch | plain MiB | fast MiB |",
         "| --- | --- | --- | --- | --- | --- | --- |"]
    vs_torch = f"{plain['ms'] / torch['ms']:.2f}×" if torch else "–"
    L.append(f"| {STEP} | {plain['ms']:.1f} | {fast['ms']:.1f} | {plain['ms'] / fast['ms']:.2f}× | {vs_torch} | "
             f"{_fmt(plain.get('work_mib'), '.0f')} | {_fmt(fast.get('work_mib'), '.0f')} |")
    return L + [""]


def _profiles(profiles):
    if not profiles:
        return []
    L = ["## Where the time goes: the training step, op by op", ""]
    t = profiles.get("tinyresnet")
    if t:
        L += [f"tinyresnet, {t['steps']} steps after a warm-up, {t['step_ms']:.0f} ms per step (profiled; the "
              f"timer wraps each op's forward and backward):", "",
              "| op | calls | forward ms | backward ms | total ms | share |",
              "| --- | ---: | ---: | ---: | ---: | ---: |"]
        for row in t["rows"]:
            L.append(f"| {row['op']} | {row['calls']} | {row['forward_ms']:.1f} | {row['backward_ms']:.1f} | "
                     f"{row['total_ms']:.1f} | {100 * row['total_ms'] / t['step_ms']:.0f}% |")
        L.append("")
    p = profiles.get("torch")
    if p:
        L += [f"PyTorch, torch.profiler, {p['steps']} steps, {p['step_ms']:.0f} ms per step (profiled); "
              f"self CPU time of the costliest ops:", "", "| op | calls | self ms per step | share |",
              "| --- | ---: | ---: | ---: |"]
        for row in p["rows"]:
            share = 100 * row["total_ms"] / p["step_ms"]
            L.append(f"| {row['op']} | {row['calls']} | {row['total_ms']:.1f} | {share:.0f}% |")
        L.append("")
    return L


def plot(table, gemm, path, meta):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    order = [c for c in _case_order() if (c, "tinyresnet") in table and (c, "torch") in table]
    convs = [c for c in order if c.endswith("fwd+bwd")]
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5))
    ax = axes[0]
    ratios = [table[(c, "tinyresnet")]["ms"] / table[(c, "torch")]["ms"] for c in order]
    ax.barh(range(len(order)), ratios, color=["tab:orange" if ":" not in c else "tab:blue" for c in order])
    ax.set_yticks(range(len(order)), order, fontsize=8)
    ax.invert_yaxis()
    ax.axvline(1.0, color="k", lw=1)
    target = ax.axvline(TARGET_STEP_RATIO, color="tab:red", ls="--", lw=1)
    ax.set_xlim(0, 1.4 * max(ratios + [TARGET_STEP_RATIO]))          # room on the right for the legend
    ax.set_xlabel("time tinyresnet / PyTorch (lower is better)")
    ax.legend([Patch(color="tab:blue"), Patch(color="tab:orange"), target],
              ["conv layers", "networks", f"step target {TARGET_STEP_RATIO}×"], fontsize=8, loc="upper right")
    ax = axes[1]
    x = range(len(convs))
    ax.bar([i - 0.2 for i in x], [table[(c, "tinyresnet")]["gflops"] for c in convs], 0.4, label="tinyresnet")
    ax.bar([i + 0.2 for i in x], [table[(c, "torch")]["gflops"] for c in convs], 0.4, label="PyTorch")
    if gemm:
        ax.axhline(gemm, color="k", lw=1, label=f"NumPy GEMM {gemm:.0f}")
        ax.axhline(TARGET_GEMM_SHARE * gemm, color="tab:red", ls="--", lw=1, label=f"{TARGET_GEMM_SHARE:.0%} of GEMM")
    ax.set_xticks(list(x), [c.split(":")[0] for c in convs], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("GFLOP/s, forward + backward")
    ax.legend(fontsize=8)
    day = datetime.datetime.fromisoformat(meta["started"]).strftime("%Y-%m-%d")
    fig.suptitle(f"tinyresnet vs PyTorch CPU, {meta['threads']} threads, {meta['machine']['cpu']} ({day})"
                 + (" — quick smoke run" if meta["quick"] else ""), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
