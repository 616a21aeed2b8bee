"""Model builders by name: ``get_model("resnet50", num_classes=10)``, ``list_models()``; and the
``weights=`` argument that every builder takes, as torchvision's do (``build_with_weights``)."""

import os
import re

_BUILDERS = {}


def register_model(default_input=(3, 224, 224)):
    """Decorator: make a builder function available to ``get_model`` under its own name.

    ``default_input`` (C, H, W) is the input size the model was designed for (used by
    ``tinyresnet summary`` when no --input is given).
    """
    def register(builder):
        if builder.__name__ in _BUILDERS:
            raise ValueError(f"a model named {builder.__name__!r} is already registered")
        builder.default_input = tuple(default_input)
        _BUILDERS[builder.__name__] = builder
        return builder
    return register


def _natural_key(name):
    """'resnet110' sorts after 'resnet56': digit runs compare as numbers."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def list_models():
    """The names ``get_model`` knows, in natural order (resnet18, resnet20, ..., resnet110, resnet152)."""
    return sorted(_BUILDERS, key=_natural_key)


def get_builder(name):
    """The builder function registered as ``name``; an unknown name lists the known ones."""
    if name not in _BUILDERS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(list_models())}")
    return _BUILDERS[name]


def get_model(name, **kwargs):
    """Build the model registered as ``name`` with the builder's keyword arguments
    (``num_classes``, ``in_channels``, and for ResNets ``shortcut``, ``stem``, ``zero_init_residual``)."""
    return get_builder(name)(**kwargs)


# ------------------------------------------------------------------ weights=, as in torchvision's builders
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin")


def _how_to_convert(builder):
    return (f"convert a PyTorch checkpoint once, where torch and torchvision are installed: "
            f"torch.save(torchvision.models.{builder}(weights=\"DEFAULT\").state_dict(), \"{builder}.pth\"), then "
            f"`tinyresnet convert-torch {builder}.pth {builder}.npz --model {builder}`, and build the model with "
            f"{builder}(weights=\"{builder}.npz\")")


def check_weights(weights, builder):
    """The weights file to load for ``builder(weights=...)``: None for ``weights=None`` (random
    initialisation), else the path of an existing .npz state_dict. Anything else raises: the name
    of a torchvision Weights enum (``"IMAGENET1K_V1"``, ``"DEFAULT"``, the enum itself) cannot be
    honoured, because tinyresnet never downloads; the message says how to convert a checkpoint."""
    if weights is None:
        return None
    if isinstance(weights, int):              # also True/False
        raise TypeError(f"{builder}(weights={weights!r}): the first argument of a builder is `weights`, as in "
                        f"torchvision; pass the number of classes by name, {builder}(num_classes=...), and weights "
                        f"as None or the path of a .npz file")
    if isinstance(weights, (str, os.PathLike)):
        path = os.fspath(weights)
        if os.path.isfile(path):
            if path.lower().endswith(CHECKPOINT_SUFFIXES):
                raise ValueError(f"{builder}(weights={path!r}) is a PyTorch checkpoint, which tinyresnet does not "
                                 f"read directly: `tinyresnet convert-torch {path} {builder}.npz --model {builder}` "
                                 f"converts it to .npz; then pass weights=\"{builder}.npz\"")
            return path
        if path.lower().endswith(".npz") or os.sep in path or path.lower().endswith(CHECKPOINT_SUFFIXES):
            raise FileNotFoundError(f"{builder}(weights={path!r}): there is no such file (working directory "
                                    f"{os.getcwd()}); give the path of a .npz state_dict saved by model.save() or "
                                    f"`tinyresnet convert-torch`")
    name = getattr(weights, "name", weights)        # a torchvision Weights enum member has a .name
    raise ValueError(f"{builder}(weights={name!r}): tinyresnet cannot download pretrained weights, so it accepts "
                     f"only weights=None (random initialisation) or the path of a .npz state_dict; to use "
                     f"torchvision's weights, {_how_to_convert(builder)}")


def build_with_weights(builder, weights, build, /, *args, **kwargs):
    """``build(*args, **kwargs)``, then load ``weights`` into it (see ``check_weights``): the shared
    body of every builder's ``weights=`` argument. The weights are checked before the model is built,
    so a wrong value fails at once; the file is loaded with ``strict=True`` (keys and shapes must match:
    build the model with the checkpoint's num_classes and in_channels)."""
    if "pretrained" in kwargs:                 # torchvision's name before ``weights=``
        pretrained = kwargs.pop("pretrained")
        if pretrained:
            check_weights("IMAGENET1K_V1", builder)       # the same refusal, with the conversion command
    path = check_weights(weights, builder)
    model = build(*args, **kwargs)
    if path is not None:
        model.load(path)
    return model
