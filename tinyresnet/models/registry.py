"""Model builders by name: ``get_model("resnet50", num_classes=10)``, ``list_models()``."""

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
