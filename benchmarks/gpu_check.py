#!/usr/bin/env python
"""Check tinyresnet on an NVIDIA GPU in one short run (a few minutes; the target is under 5).

1. Runs the GPU tests: every device-parameterised test with device="cuda", and tests/test_device.py.
2. Compares the CPU and the GPU (CuPy) on the same CIFAR ResNet-18 (same weights, same batch), in
   float32 and in float64: logits, loss, every parameter's gradient, the BatchNorm running statistics
   and the eval-mode logits after the step. Per tensor the error is max|gpu − cpu| / max|cpu|; the
   tolerances are TOLERANCE below (float32: 1e-3, float64: 1e-9; the GPU sums in another order).
3. Times a training step at batch 128 (CIFAR ResNet-18, 32×32: forward, loss, backward, SGD step)
   and ResNet-50 inference (batch 32, 224×224), with tinyresnet on CuPy and, when torch with CUDA
   is installed, with PyTorch CUDA side by side (median of several runs after warm-up, synchronised;
   full float32 on both sides: PyTorch's TF32 for convolutions is turned off, as CuPy does not use it).

It writes the results, with the GPU's name, to benchmarks/GPU_RESULTS.md (or --out).

    python benchmarks/gpu_check.py [--out PATH] [--skip-tests] [--quick]

Exit status: 0 every check passed; 1 a check failed; 2 no usable GPU here (nothing run, nothing written).
"""

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))       # run from a checkout without installing

from tinyresnet import Tensor, no_grad  # noqa: E402
from tinyresnet import functional as F  # noqa: E402
from tinyresnet.backend import check_device, gpu_available, to_device, to_numpy  # noqa: E402

TOLERANCE = {np.float32: 1e-3, np.float64: 1e-9}
TARGET_RATIO = 3.0          # the CuPy training step should be within 3× of PyTorch CUDA's time
TEST_TIMEOUT_S = 170


# --------------------------------------------------------------------------- CPU vs GPU
def build_model(name, **kwargs):
    from tinyresnet import models
    if name == "resnet18":
        return models.resnet18(num_classes=10, stem="cifar", **kwargs)      # 3×3 stride-1 stem, no max-pool
    return models.get_model(name, num_classes=10, **kwargs)


def _relative_error(gpu, cpu):
    gpu, cpu = np.asarray(gpu, dtype=np.float64), np.asarray(cpu, dtype=np.float64)
    scale = float(np.abs(cpu).max(initial=0.0))
    diff = float(np.abs(gpu - cpu).max(initial=0.0))
    return diff / scale if scale > 0 else diff


def compare_devices(name="resnet18", dtype=np.float32, batch=8, size=32, seed=0):
    """One training-mode forward and backward of the same model and batch on "cpu" and "cuda".

    Returns ``{"ok", "worst_rel_error", "worst_tensor", "tensors_compared", "tolerance", ...}``.
    """
    cpu_model = build_model(name).to(dtype=dtype)
    gpu_model = build_model(name).to(dtype=dtype)
    gpu_model.load_state_dict({k: to_numpy(v) for k, v in cpu_model.state_dict().items()})
    gpu_model.to("cuda")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, 3, size, size)).astype(dtype)
    targets = rng.integers(0, 10, batch)

    results = {}
    for device, model in (("cpu", cpu_model), ("cuda", gpu_model)):
        model.train()
        logits = model(Tensor(to_device(x, device)))
        loss = F.cross_entropy(logits, to_device(targets, device))
        loss.backward()
        tensors = {"logits": logits.data, "loss": loss.data}
        tensors.update({f"grad {n}": p.grad for n, p in model.named_parameters()})
        tensors.update({f"buffer {n}": b for n, b in model.named_buffers()})
        model.eval()
        with no_grad():
            tensors["eval logits"] = model(Tensor(to_device(x, device))).data
        results[device] = {k: to_numpy(v) for k, v in tensors.items()}

    errors = {k: _relative_error(results["cuda"][k], results["cpu"][k]) for k in results["cpu"]}
    worst = max(errors, key=errors.get)
    tolerance = TOLERANCE[dtype]
    return {"model": name, "dtype": np.dtype(dtype).name, "batch": batch, "size": size,
            "tensors_compared": len(errors), "worst_tensor": worst, "worst_rel_error": errors[worst],
            "tolerance": tolerance, "ok": errors[worst] <= tolerance}


# --------------------------------------------------------------------------- timing
def _median_time(step, sync, warmup, repeat):
    for _ in range(warmup):
        step()
    sync()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_tinyresnet(batch, inference_batch, warmup, repeat, sync=None, train_size=32, image_size=224, **kwargs):
    """Seconds per CIFAR ResNet-18 training step and per ResNet-50 inference batch on "cuda".

    ``sync`` waits for the GPU to finish (CuPy's device synchronise unless given); ``kwargs`` go to
    both model builders (``widths=`` makes a small smoke run).
    """
    if sync is None:
        import cupy
        sync = cupy.cuda.Device().synchronize
    train = _median_time(_tinyresnet_train_step(batch, train_size, kwargs), sync, warmup, repeat)
    inference = _median_time(_tinyresnet_inference(inference_batch, image_size, kwargs), sync, warmup, repeat)
    return train, inference


def _tinyresnet_train_step(batch, size, kwargs):
    from tinyresnet.optim import SGD

    rng = np.random.default_rng(0)
    model = build_model("resnet18", **kwargs).to("cuda")
    optimizer = SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    x = Tensor(to_device(rng.standard_normal((batch, 3, size, size)).astype(np.float32), "cuda"))
    t = to_device(rng.integers(0, 10, batch), "cuda")

    def train_step():
        optimizer.zero_grad()
        F.cross_entropy(model(x), t).backward()
        optimizer.step()
    return train_step


def _tinyresnet_inference(batch, image_size, kwargs):
    from tinyresnet import models

    rng = np.random.default_rng(0)
    resnet50 = models.resnet50(**kwargs).to("cuda").eval()
    images = Tensor(to_device(rng.standard_normal((batch, 3, image_size, image_size)).astype(np.float32), "cuda"))

    def infer():
        with no_grad():
            resnet50(images)
    return infer


def time_torch(batch, inference_batch, warmup, repeat):
    """The same two workloads in PyTorch CUDA, or None when torch has no CUDA here."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = False         # full float32, as CuPy computes by default
    torch.backends.cuda.matmul.allow_tf32 = False
    sync = torch.cuda.synchronize
    model = torch_resnet(torch, "basic", [2, 2, 2, 2], cifar=True).cuda()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(batch, 3, 32, 32, device="cuda")
    t = torch.randint(0, 10, (batch,), device="cuda")

    def train_step():
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), t).backward()
        optimizer.step()

    train = _median_time(train_step, sync, warmup, repeat)
    resnet50 = torch_resnet(torch, "bottleneck", [3, 4, 6, 3], cifar=False, num_classes=1000).cuda().eval()
    images = torch.randn(inference_batch, 3, 224, 224, device="cuda")

    def infer():
        with torch.no_grad():
            resnet50(images)

    inference = _median_time(infer, sync, warmup, repeat)
    return train, inference, torch.__version__


def torch_resnet(torch, block, layers, cifar, num_classes=10):
    """A torchvision-shaped ResNet in plain torch.nn (torchvision need not be installed)."""
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self, cin, planes, stride):
            super().__init__()
            out = planes * (4 if block == "bottleneck" else 1)
            if block == "bottleneck":
                self.body = nn.Sequential(
                    nn.Conv2d(cin, planes, 1, bias=False), nn.BatchNorm2d(planes), nn.ReLU(),
                    nn.Conv2d(planes, planes, 3, stride, 1, bias=False), nn.BatchNorm2d(planes), nn.ReLU(),
                    nn.Conv2d(planes, out, 1, bias=False), nn.BatchNorm2d(out))
            else:
                self.body = nn.Sequential(
                    nn.Conv2d(cin, planes, 3, stride, 1, bias=False), nn.BatchNorm2d(planes), nn.ReLU(),
                    nn.Conv2d(planes, planes, 3, 1, 1, bias=False), nn.BatchNorm2d(planes))
            self.shortcut = nn.Identity() if stride == 1 and cin == out else nn.Sequential(
                nn.Conv2d(cin, out, 1, stride, bias=False), nn.BatchNorm2d(out))
            self.out_channels = out

        def forward(self, x):
            return torch.relu(self.body(x) + self.shortcut(x))

    stem = ([nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU()] if cifar else
            [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1)])
    blocks, cin = [], 64
    for i, (planes, n) in enumerate(zip([64, 128, 256, 512], layers)):
        for j in range(n):
            blocks.append(Block(cin, planes, 2 if i > 0 and j == 0 else 1))
            cin = blocks[-1].out_channels
    return nn.Sequential(*stem, *blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes))


# --------------------------------------------------------------------------- the GPU tests
def run_gpu_tests():
    """Every device-parameterised test with device="cuda", and tests/test_device.py."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "cuda or cupy or test_device",
               str(ROOT / "tests")]
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    start = time.perf_counter()
    try:
        result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env, timeout=TEST_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"ok": False, "summary": f"timed out after {TEST_TIMEOUT_S} s", "seconds": TEST_TIMEOUT_S, "tail": ""}
    lines = [line for line in result.stdout.strip().splitlines() if line.strip()]
    return {"ok": result.returncode == 0, "summary": lines[-1] if lines else f"exit status {result.returncode}",
            "seconds": time.perf_counter() - start, "tail": "\n".join(lines[-25:])}


# --------------------------------------------------------------------------- report
def describe_gpu():
    import cupy
    props = cupy.cuda.runtime.getDeviceProperties(0)
    name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])

    def version(v):
        return f"{v // 1000}.{v % 1000 // 10}"
    return {"name": name, "memory_gib": props["totalGlobalMem"] / 2 ** 30,
            "driver": version(cupy.cuda.runtime.driverGetVersion()),
            "runtime": version(cupy.cuda.runtime.runtimeGetVersion()), "cupy": cupy.__version__}


def write_report(path, gpu, tests, comparisons, ours, theirs, batch, inference_batch):
    lines = [f"# tinyresnet on a GPU: {gpu['name']}", "",
             f"Written by `benchmarks/gpu_check.py` on {datetime.date.today().isoformat()}: {gpu['name']} "
             f"({gpu['memory_gib']:.0f} GiB), CUDA driver {gpu['driver']}, runtime {gpu['runtime']}, "
             f"CuPy {gpu['cupy']}, NumPy {np.__version__}, Python {platform.python_version()}"
             + (f", PyTorch {theirs[2]}" if theirs else ", no PyTorch CUDA") + ".", "",
             "## GPU tests", "",
             "Device-parameterised tests with device=\"cuda\", and tests/test_device.py: "
             + ("skipped (--skip-tests)" if tests is None else
                f"**{'passed' if tests['ok'] else 'FAILED'}**: {tests['summary']} ({tests['seconds']:.0f} s)"), ""]
    if tests is not None and not tests["ok"]:
        lines += ["```", tests["tail"], "```", ""]
    lines += ["## CPU and GPU agree", "",
              "Same weights and batch; training-mode forward and backward, then eval-mode logits. Error per "
              "tensor: max|gpu − cpu| / max|cpu|.", "",
              "| model | dtype | batch | tensors | worst error | worst tensor | tolerance | result |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for c in comparisons:
        lines.append(f"| {c['model']} ({c['size']}×{c['size']}) | {c['dtype']} | {c['batch']} | "
                     f"{c['tensors_compared']} | {c['worst_rel_error']:.2e} | {c['worst_tensor']} | "
                     f"{c['tolerance']:.0e} | {'ok' if c['ok'] else 'FAILED'} |")
    lines += ["", "## Time (median, synchronised, float32 with TF32 off on both sides, data already on the GPU)", "",
              "| workload | tinyresnet + CuPy | PyTorch CUDA | ratio |", "| --- | --- | --- | --- |"]
    names = [f"CIFAR ResNet-18 training step, batch {batch}, 32×32",
             f"ResNet-50 inference, batch {inference_batch}, 224×224"]
    for i, name in enumerate(names):
        torch_ms = f"{theirs[i] * 1e3:.1f} ms" if theirs else "n/a"
        ratio = f"{ours[i] / theirs[i]:.1f}×" if theirs else "n/a"
        lines.append(f"| {name} | {ours[i] * 1e3:.1f} ms ({batch if i == 0 else inference_batch} / "
                     f"{ours[i]:.3f} s = {(batch if i == 0 else inference_batch) / ours[i]:.0f} images/s) | "
                     f"{torch_ms} | {ratio} |")
    if theirs:
        ratio = ours[0] / theirs[0]
        lines += ["", f"Target: the CuPy training step within {TARGET_RATIO:.0f}× of PyTorch CUDA: "
                      f"**{'met' if ratio <= TARGET_RATIO else 'not met'}** ({ratio:.1f}×)."]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "GPU_RESULTS.md"), help="results file")
    parser.add_argument("--skip-tests", action="store_true", help="do not run the GPU tests")
    parser.add_argument("--quick", action="store_true", help="fewer timing runs (for a smoke check)")
    parser.add_argument("--batch", type=int, default=128, help="training-step batch size (default 128)")
    parser.add_argument("--inference-batch", type=int, default=32, help="ResNet-50 batch size (default 32)")
    args = parser.parse_args(argv)

    if not gpu_available():
        try:
            check_device("cuda")
            reason = "no CUDA device"
        except RuntimeError as e:
            reason = str(e)
        print(f"gpu_check: no GPU here, so nothing was run and nothing was written.\n  {reason}\n"
              f"  Run it on a machine with an NVIDIA GPU after: pip install 'tinyresnet[gpu]' (docs/gpu.md).")
        return 2

    gpu = describe_gpu()
    print(f"gpu_check on {gpu['name']} (CuPy {gpu['cupy']}, CUDA runtime {gpu['runtime']})", flush=True)
    tests = None if args.skip_tests else run_gpu_tests()
    if tests is not None:
        print(f"GPU tests: {tests['summary']}", flush=True)

    comparisons = [compare_devices("resnet18", dtype) for dtype in (np.float32, np.float64)]
    for c in comparisons:
        print(f"CPU vs GPU {c['model']} {c['dtype']}: worst {c['worst_rel_error']:.2e} ({c['worst_tensor']}) "
              f"{'ok' if c['ok'] else 'FAILED'}", flush=True)

    warmup, repeat = (1, 3) if args.quick else (3, 10)
    ours = time_tinyresnet(args.batch, args.inference_batch, warmup, repeat)
    theirs = time_torch(args.batch, args.inference_batch, warmup, repeat)
    print(f"tinyresnet+CuPy: train step {ours[0] * 1e3:.1f} ms, ResNet-50 inference {ours[1] * 1e3:.1f} ms")
    if theirs:
        print(f"PyTorch CUDA:    train step {theirs[0] * 1e3:.1f} ms, ResNet-50 inference {theirs[1] * 1e3:.1f} ms")

    write_report(args.out, gpu, tests, comparisons, ours, theirs, args.batch, args.inference_batch)
    print(f"wrote {args.out}")
    ok = (tests is None or tests["ok"]) and all(c["ok"] for c in comparisons)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
