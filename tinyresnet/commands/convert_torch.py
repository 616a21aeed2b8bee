"""``tinyresnet convert-torch CHECKPOINT.pth OUT.npz [--model NAME]``: a torchvision state_dict as .npz.

Reads the checkpoint with ``torch.load(weights_only=True)`` (no code in the file is run), takes
its state_dict (also when wrapped as {"state_dict": ...} or {"model": ...}, and without the
"module." prefix that DataParallel adds), and writes every tensor as a NumPy array under the same
key, atomically. With --model, checks first that the arrays load into that model with strict=True.
"""

import pickle


def add_arguments(parser):
    parser.add_argument("checkpoint", help="a .pth file holding a state_dict (torch.save(model.state_dict(), ...))")
    parser.add_argument("output", help="the .npz file to write")
    parser.add_argument("--model", metavar="NAME",
                        help="check that the weights load into this model (e.g. resnet50) before writing")
    parser.add_argument("--num-classes", type=int, metavar="N",
                        help="with --model: the number of classes (default: read from the checkpoint's last layer)")
    parser.add_argument("--in-channels", type=int, default=3, metavar="C", help="with --model: input channels")


def extract_state_dict(checkpoint):
    """The state_dict inside what torch.load returned, keys without a DataParallel "module." prefix."""
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(checkpoint, dict) and isinstance(checkpoint.get(key), dict):
            checkpoint = checkpoint[key]
            break
    if not isinstance(checkpoint, dict):
        raise ValueError(f"the checkpoint holds a {type(checkpoint).__name__}, not a state_dict; save "
                         f"model.state_dict() rather than the whole model")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in checkpoint.items()}


def to_arrays(state_dict):
    """Every tensor of ``state_dict`` as a NumPy array; anything else is an error naming its key."""
    arrays = {}
    for key, value in state_dict.items():
        if not hasattr(value, "detach"):
            raise ValueError(f"entry {key!r} is a {type(value).__name__}, not a tensor; is this a state_dict?")
        arrays[key] = value.detach().cpu().numpy()
    return arrays


def load_checkpoint(torch, path):
    """torch.load with weights_only=True: tensors and plain containers only, no code from the file."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise ValueError(f"{path} holds more than tensors (a whole pickled model?), which is not loaded "
                         f"because unpickling can run code; save model.state_dict() instead") from e


def run(args):
    try:
        import torch
    except ImportError:
        print("tinyresnet convert-torch: error: this command needs PyTorch to read .pth files; install it with "
              "pip install torch (or pip install 'tinyresnet[torch]')")
        return 1
    from ..serialization import save_npz

    try:
        checkpoint = load_checkpoint(torch, args.checkpoint)
        arrays = to_arrays(extract_state_dict(checkpoint))
        if args.model:
            check_loads(arrays, args.model, args.num_classes, args.in_channels)
    except (OSError, RuntimeError, ValueError) as e:
        print(f"tinyresnet convert-torch: error: {e}")
        return 1
    save_npz(args.output, arrays)
    total = sum(int(a.size) for a in arrays.values())
    print(f"wrote {len(arrays)} arrays ({total:,} values) to {args.output}")
    return 0


def check_loads(arrays, name, num_classes=None, in_channels=3):
    """Build model ``name`` and load ``arrays`` into it with strict=True (raises on any mismatch)."""
    from ..models import get_model

    if num_classes is None:
        last_bias = [a for k, a in arrays.items() if k.endswith("bias") and a.ndim == 1]
        num_classes = int(last_bias[-1].shape[0]) if last_bias else 1000
    get_model(name, num_classes=num_classes, in_channels=in_channels).load_state_dict(arrays, strict=True)
