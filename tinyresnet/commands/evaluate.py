"""``tinyresnet evaluate CHECKPOINT``: test accuracy and confusion matrix of a trained model.

    tinyresnet evaluate runs/resnet20-digits/best.npz        # or the run folder itself

The test set is the one the run was trained against (its dataset and --data-dir, both saved in
the checkpoint); the confusion matrix is printed and saved as a PNG beside the checkpoint.
"""

import argparse
import os
import sys

from ..backend import check_device


def positive_int(text):
    """An argparse ``type``: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_arguments(parser):
    parser.add_argument("checkpoint", help="a checkpoint (best.npz, last.npz) or a run folder (uses its best.npz)")
    parser.add_argument("--data-dir", help="where the dataset lies now, if not where it was during training")
    parser.add_argument("--split", choices=("test", "train"), default="test", help="which split to measure")
    parser.add_argument("--batch-size", type=positive_int, default=500, help="images per forward pass (default 500)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--model", help="build this architecture instead of the saved one (must fit the weights)")
    parser.add_argument("--out", help="where to save the confusion-matrix PNG (default: beside the checkpoint)")


def resolve_checkpoint(path):
    """A run folder means its best.npz (or last.npz); a file is used as it is."""
    if os.path.isdir(path):
        for name in ("best.npz", "last.npz"):
            if os.path.exists(os.path.join(path, name)):
                return os.path.join(path, name)
        raise FileNotFoundError(f"{path} holds no best.npz or last.npz; is it a run folder of `tinyresnet train`?")
    return path


def run(args):
    from ..data import DataLoader, get_dataset
    from ..data.transforms import Normalize
    from ..training import confusion_matrix, evaluate, format_confusion, plot_confusion
    from ..training.inference import load_trained_model

    try:
        device = check_device(args.device)
        path = resolve_checkpoint(args.checkpoint)
        model, info = load_trained_model(path, device, args.model)
        train, test = get_dataset(info["dataset"], args.data_dir or info["data_dir"], info["image_shape"][1],
                                  info["in_channels"])
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    dataset = test if args.split == "test" else train
    if tuple(dataset.image_shape) != tuple(info["image_shape"]):
        print(f"error: the {info['dataset']} images are {dataset.image_shape} but the model was trained on "
              f"{tuple(info['image_shape'])}", file=sys.stderr)
        return 1
    loader = DataLoader(dataset, args.batch_size, transform=Normalize(info["mean"], info["std"]), device=device)
    result = evaluate(model, loader)
    counts = confusion_matrix(result["labels"], result["predictions"], info["num_classes"])
    correct = int(counts.trace())
    print(f"{path}: {info['name']} on {info['dataset']} ({args.split}, {len(dataset)} images)")
    print(f"accuracy {100 * result['accuracy']:.2f}% ({correct}/{len(dataset)}), loss {result['loss']:.4f}")
    print(format_confusion(counts, info["classes"]))
    out = args.out or os.path.splitext(path)[0] + f"-confusion-{args.split}.png"
    plot_confusion(counts, info["classes"], out,
                   title=f"{info['name']} on {info['dataset']} {args.split}: {100 * result['accuracy']:.2f}%")
    print(f"confusion matrix saved to {out}")
    return 0
