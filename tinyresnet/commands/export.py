"""``tinyresnet export CHECKPOINT OUT.onnx``: a trained model as a standard ONNX graph.

    tinyresnet export runs/resnet20-digits/best.npz resnet20.onnx

The graph takes one batch of normalised images, (batch, C, H, W) with the checkpoint's image shape
and a dynamic batch size, and returns the logits (batch, classes). The normalisation (mean, std),
the class names and the image shape are stored in the model's metadata. Where onnxruntime is
installed the export is checked: the ONNX model and tinyresnet must give the same logits.
"""

import json
import os
import sys

import numpy as np

VERIFY_TOLERANCE = 1e-4       # max |difference| relative to max |logit|


def add_arguments(parser):
    parser.add_argument("checkpoint", help="a checkpoint (best.npz, last.npz) or a run folder")
    parser.add_argument("output", help="the .onnx file to write")
    parser.add_argument("--opset", type=int, default=17, help="the ONNX opset (default 17, the lowest supported)")
    parser.add_argument("--static-batch", type=int, metavar="N",
                        help="fix the batch size to N instead of leaving it dynamic")
    parser.add_argument("--model", help="override the checkpoint's architecture name")
    parser.add_argument("--no-verify", action="store_true",
                        help="skip comparing onnxruntime's logits with tinyresnet's")


def metadata(info, checkpoint):
    """What a user of the .onnx file needs to prepare its input and read its output, as strings."""
    keys = ("name", "num_classes", "in_channels", "image_shape", "classes", "mean", "std", "dataset")
    props = {key: json.dumps(_plain(info[key])) for key in keys if key in info}
    props["checkpoint"] = os.path.basename(checkpoint)
    props["input"] = "images as float32 (batch, C, H, W) in [0, 1], then (x - mean) / std per channel"
    return props


def _plain(value):
    """NumPy values as JSON-friendly Python ones."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _example_batch(info, size, seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((size, *info["image_shape"])).astype(np.float32)


def report_check(tonnx, model, path, info, batch):
    """Run the written file in onnxruntime on a random batch (another size than the traced one when
    the batch is dynamic) and compare; returns the exit status."""
    try:
        difference, largest = tonnx.verify(model, path, _example_batch(info, batch, seed=1))
    except ImportError:
        print("  not checked: onnxruntime is not installed (pip install onnxruntime)")
        return 0
    except Exception as e:                            # onnxruntime's own errors (an opset it does not know, ...)
        print(f"error: onnxruntime could not run {path}: {e}; try --opset 17, or pass --no-verify", file=sys.stderr)
        return 1
    relative = difference / max(largest, 1e-12)
    if relative > VERIFY_TOLERANCE:
        print(f"error: onnxruntime's logits differ from tinyresnet's by {difference:.3g} (max |logit| {largest:.3g}, "
              f"relative {relative:.2g} > {VERIFY_TOLERANCE:g}); please report this with the checkpoint",
              file=sys.stderr)
        return 1
    print(f"  checked in onnxruntime on a batch of {batch}: max |difference| {difference:.3g} "
          f"(max |logit| {largest:.3g})")
    return 0


def run(args):
    from .. import onnx as tonnx
    from ..training.inference import load_trained_model
    from .evaluate import resolve_checkpoint

    if args.static_batch is not None and args.static_batch < 1:
        print(f"error: --static-batch {args.static_batch}: give a batch size of 1 or more", file=sys.stderr)
        return 2
    try:
        path = resolve_checkpoint(args.checkpoint)
        model, info = load_trained_model(path, "cpu", args.model)
        trace_batch = args.static_batch or 2
        tonnx.export(model, _example_batch(info, trace_batch, seed=0), args.output, opset=args.opset,
                     dynamic_batch=args.static_batch is None, metadata=metadata(info, path))
    except (ValueError, FileNotFoundError, RuntimeError, ImportError, NotImplementedError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    c, h, w = info["image_shape"]
    batch = args.static_batch or "batch"
    print(f"wrote {args.output} ({os.path.getsize(args.output) / 1e6:.1f} MB, opset {args.opset}): "
          f"{info['name']}, input ({batch}, {c}, {h}, {w}) -> logits ({batch}, {info['num_classes']})")
    print(f"  input: images in [0, 1] normalised with mean {_plain(info['mean'])} and std {_plain(info['std'])}")
    if args.no_verify:
        return 0
    return report_check(tonnx, model, args.output, info, args.static_batch or 3)
