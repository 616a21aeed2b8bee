"""``tinyresnet predict CHECKPOINT IMAGE...``: the top-k classes of pictures, with probabilities.

    tinyresnet predict runs/resnet20-digits/best.npz my_seven.png --invert

Each image is converted to what the model was trained on (greyscale or RGB, resized to its
height × width, normalised with the training mean and std). The digits are light strokes on a
dark background: pass --invert for dark ink on white paper. Transparent pixels count as white paper,
so a drawing on a transparent canvas is dark ink on white too.
"""

import sys

import numpy as np

from ..backend import check_device


def add_arguments(parser):
    parser.add_argument("checkpoint", help="a checkpoint (best.npz, last.npz) or a run folder")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="PNG/JPEG files")
    parser.add_argument("--topk", type=int, default=3, help="how many classes to show per image (default 3)")
    parser.add_argument("--invert", action="store_true", help="invert the pixels (dark ink on a light background)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")


def run(args):
    from ..data import read_image
    from ..training.inference import load_trained_model, predict_proba
    from .evaluate import resolve_checkpoint

    try:
        device = check_device(args.device)
        model, info = load_trained_model(resolve_checkpoint(args.checkpoint), device)
        channels, height, width = info["image_shape"]
        images = np.stack([read_image(p, (height, width), channels) for p in args.images]).astype(np.float32) / 255
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.topk < 1:
        print("error: --topk must be at least 1", file=sys.stderr)
        return 2
    if args.invert:
        images = 1.0 - images
    probabilities = predict_proba(model, images, info, device)             # (N, K)
    k = min(args.topk, info["num_classes"])
    dark_training = float(np.mean(info["mean"])) < 0.5
    for path, image, p in zip(args.images, images, probabilities):
        best = np.argsort(-p, kind="stable")[:k]
        ranked = ", ".join(f"{info['classes'][j]} ({100 * p[j]:.1f}%)" for j in best)
        print(f"{path}: {ranked}")
        if dark_training and not args.invert and image.mean() > 0.5:
            print(f"  note: {path} is mostly light but the training images are mostly dark; if it shows dark "
                  f"ink on a light background, pass --invert")
    return 0
