"""``tinyresnet summary MODEL [--input 3x224x224] [--num-classes N] [--depth D] [--json]``."""

import json


def add_arguments(parser):
    parser.add_argument("model", help="a model name, e.g. resnet50 (see --list)", nargs="?")
    parser.add_argument("--input", metavar="CxHxW",
                        help="input size without the batch, e.g. 3x224x224 or 1x8x8 (default: the size the "
                             "model was designed for: 3x224x224, or 3x32x32 for the CIFAR nets)")
    parser.add_argument("--num-classes", type=int, metavar="N",
                        help="output classes (default: the builder's, 1000 or 10)")
    parser.add_argument("--depth", type=int, metavar="D",
                        help="show rows nested at most D deep (1: the stem, the stages and the head)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--list", action="store_true", help="list the known models and exit")


def parse_size(text):
    """'3x224x224' -> (3, 224, 224)."""
    try:
        size = tuple(int(part) for part in text.lower().split("x"))
    except ValueError:
        size = ()
    if len(size) != 3 or min(size) < 1:
        raise ValueError(f"--input {text!r}: give channels x height x width, e.g. 3x224x224 or 1x8x8")
    return size


def run(args):
    from ..models import get_builder, list_models
    from ..summary import summarize

    if args.list or not args.model:
        print("\n".join(list_models()))
        return 0 if args.list else 2
    try:
        builder = get_builder(args.model)
        size = parse_size(args.input) if args.input else builder.default_input
        kwargs = {"in_channels": size[0]}
        if args.num_classes is not None:
            kwargs["num_classes"] = args.num_classes
        model = builder(**kwargs)
        result = summarize(model, size, name=args.model)
    except ValueError as e:
        print(f"tinyresnet summary: error: {e}")
        return 2
    print(json.dumps(result.to_dict(), indent=1) if args.json else result.to_text(args.depth))
    return 0
