"""The ``tinyresnet`` command: ``tinyresnet SUBCOMMAND [options]``.

Each subcommand lives in ``tinyresnet/commands/<name>.py`` with ``add_arguments(parser)`` and
``run(args) -> int``; only the chosen one is imported, so ``tinyresnet --help`` starts fast.
"""

import argparse
import importlib
import sys

SUBCOMMANDS = {
    "train": ("train", "train a model (default: a CIFAR-style ResNet on the bundled digits)"),
    "evaluate": ("evaluate", "accuracy and confusion matrix of a checkpoint on a test set"),
    "predict": ("predict", "top-k classes of images from a checkpoint"),
    "summary": ("summary", "per-layer output shapes, parameters and multiply-accumulates of a model"),
    "export": ("export", "export a checkpoint to an ONNX graph (needs onnx; onnxruntime to check it)"),
    "convert-torch": ("convert_torch", "convert a torchvision .pth state_dict to .npz (needs torch)"),
    "verify-doc": ("verify_doc", "recompute every worked number of the ResNet document"),
    "assignment": ("assignment", "release, check and grade classroom assignments"),
}


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    top = argparse.ArgumentParser(prog="tinyresnet", description="tinyresnet: ResNets from scratch on NumPy/CuPy.")
    top.add_argument("--version", action="store_true", help="print the version and exit")
    sub = top.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in SUBCOMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    if not argv or argv[0] not in SUBCOMMANDS:
        args = top.parse_args(argv)
        if args.version:
            from . import __version__
            print(__version__)
            return 0
        top.print_help()
        return 0 if not argv else 2
    name = argv[0]
    module = importlib.import_module(f"tinyresnet.commands.{SUBCOMMANDS[name][0]}")
    parser = argparse.ArgumentParser(prog=f"tinyresnet {name}", description=SUBCOMMANDS[name][1])
    module.add_arguments(parser)
    args = parser.parse_args(argv[1:])
    try:
        return module.run(args) or 0
    except BrokenPipeError:          # `tinyresnet summary resnet50 | head`: the reader left early
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
