#!/usr/bin/env python
"""Where a CIFAR training step spends its time, op by op, in tinyresnet or in PyTorch.

    python benchmarks/profile_step.py [--side tinyresnet|torch] [--model resnet18_cifar|resnet20|resnet56|...]
                                      [--batch B] [--steps K] [--quick] [--json]

tinyresnet: every Function subclass's forward and backward is wrapped with a timer for the profiled
steps (the outermost op only, so nested calls are not counted twice); the optimizer step, and the rest
(the engine's graph walk and gradient accumulation, Python overhead) are shown as their own rows.
PyTorch: torch.profiler's self CPU time per aten op.
"""

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402


def _all_subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _all_subclasses(sub)


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
clock = time.perf_counter


def profile_tinyresnet(batch, steps, threads=None, model_name="resnet18_cifar"):
    import tinyresnet as tr
    from tinyresnet import functional as F
    from tinyresnet import models, optim, tiers
    from tinyresnet.autograd import Function

    settings = tiers.compute_settings(threads)   # as the training loop has it, for the rest of this process
    settings.__enter__()                          # (kept in a name: a dropped generator would put them back)
    rng = np.random.default_rng(0)
    x = tr.Tensor(rng.standard_normal((batch, 3, 32, 32), dtype=np.float32))
    y = rng.integers(0, 10, batch)
    if model_name == "resnet18_cifar":
        model = models.resnet18(num_classes=10, stem="cifar").train()
    else:
        model = getattr(models, model_name)(num_classes=10).train()
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    spent, calls, depth = defaultdict(float), defaultdict(int), [0]

    def timed(method, key):
        def wrapper(self, *args, **kwargs):
            if depth[0]:
                return method(self, *args, **kwargs)
            depth[0] += 1
            t = clock()
            try:
                return method(self, *args, **kwargs)
            finally:
                spent[(type(self).__name__, key)] += clock() - t
                calls[(type(self).__name__, key)] += 1
                depth[0] -= 1
        return wrapper

    def step():
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        t = clock()
        opt.step()
        spent[("optimizer step (SGD)", "forward")] += clock() - t

    step()                                             # warm-up, unprofiled
    spent.clear()
    for cls in list(_all_subclasses(Function)):
        for key in ("forward", "backward"):
            if key in cls.__dict__:
                setattr(cls, key, timed(cls.__dict__[key], key))
    start = clock()
    for _ in range(steps):
        step()
    step_ms = 1e3 * (clock() - start) / steps
    ops = defaultdict(lambda: dict(forward_ms=0.0, backward_ms=0.0, calls=0))
    for (name, key), s in spent.items():
        ops[name][f"{key}_ms"] += 1e3 * s / steps
        ops[name]["calls"] = max(ops[name]["calls"], calls[(name, key)] // steps)
    rows = [dict(op=name, total_ms=v["forward_ms"] + v["backward_ms"], **v) for name, v in ops.items()]
    rows.sort(key=lambda r: -r["total_ms"])
    rest = step_ms - sum(r["total_ms"] for r in rows)
    rows.append(dict(op="rest (graph walk, gradient sums, Python)", calls=0, forward_ms=rest, backward_ms=0.0,
                     total_ms=rest))
    return dict(side="tinyresnet", steps=steps, step_ms=step_ms, rows=rows)


def profile_torch(batch, steps, threads, model_name="resnet18_cifar"):
    import torch
    import torch.nn.functional as F
    from torch.profiler import ProfilerActivity, profile
    from torch_models import cifar_resnet, resnet18_cifar

    torch.set_num_threads(threads)
    x = torch.randn(batch, 3, 32, 32)
    y = torch.randint(0, 10, (batch,))
    if model_name == "resnet18_cifar":
        model = resnet18_cifar(10).train()
    else:
        model = cifar_resnet(int(model_name[len("resnet"):]), 10).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

    def step():
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()

    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        start = clock()
        for _ in range(steps):
            step()
        step_ms = 1e3 * (clock() - start) / steps
    events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:12]
    rows = [dict(op=e.key, calls=e.count // steps, total_ms=e.self_cpu_time_total / 1e3 / steps) for e in events]
    return dict(side="torch", steps=steps, step_ms=step_ms, rows=rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", choices=["tinyresnet", "torch"], default="tinyresnet")
    parser.add_argument("--steps", type=int, default=None, help="profiled steps (default 5, quick 1)")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads (default: PyTorch's own choice; for tinyresnet, as many as its BLAS had)")
    parser.add_argument("--model", default="resnet18_cifar",
                        help="resnet18_cifar (default) or a CIFAR ResNet: resnet20, resnet56, resnet110, ...")
    parser.add_argument("--batch", type=int, default=None, help="batch size (default 64, quick 8)")
    parser.add_argument("--quick", action="store_true", help="batch 8 instead of 64")
    parser.add_argument("--json", action="store_true", help="print one JSON line instead of a table")
    parser.add_argument("--clock", choices=list(CLOCKS), default="wall",
                        help="wall-clock time (default), or this process's CPU time summed over its threads: "
                             "steadier on a busy machine, but it counts spinning BLAS threads as busy")
    args = parser.parse_args()
    global clock
    clock = CLOCKS[args.clock]
    batch, steps = (8, args.steps or 1) if args.quick else (64, args.steps or 5)
    batch = args.batch or batch
    if args.side == "tinyresnet":
        result = profile_tinyresnet(batch, steps, args.threads, args.model)
    else:
        import torch
        result = profile_torch(batch, steps, args.threads or torch.get_num_threads(), args.model)
    if args.json:
        print(json.dumps(result))
        return
    print(f"{result['side']}: batch {batch}, {result['step_ms']:.0f} ms per step")
    for r in result["rows"]:
        split = f"  fwd {r['forward_ms']:7.1f}  bwd {r['backward_ms']:7.1f}" if "forward_ms" in r else ""
        share = 100 * r["total_ms"] / result["step_ms"]
        print(f"  {r['op']:<44} {r['calls']:4d} calls {r['total_ms']:8.1f} ms {share:4.0f}%{split}")


if __name__ == "__main__":
    main()
