"""Using a trained model: rebuild it from a checkpoint, and class probabilities for new images."""

import numpy as np

from .. import functional as F
from ..autograd import Tensor, no_grad
from ..backend import check_device, to_device, to_numpy
from ..data.transforms import Normalize
from .checkpoint import load_checkpoint, load_model_state


def load_trained_model(checkpoint_path, device="cpu", model_name=None):
    """Rebuild the model of a checkpoint (``last.npz`` / ``best.npz``) and load its weights.

    Returns ``(model, model_info)``: the model in eval mode on ``device``, and what it was trained
    on (``name``, ``num_classes``, ``in_channels``, ``image_shape``, ``classes``, ``mean``, ``std``,
    ``dataset``, ``data_dir``). ``model_name`` overrides the saved architecture; one that does not
    fit the weights fails with an error naming the mismatched keys.
    """
    from .. import models

    checkpoint = load_checkpoint(checkpoint_path)
    info = checkpoint["meta"]["model_info"]
    model = models.get_model(model_name or info["name"], num_classes=info["num_classes"],
                             in_channels=info["in_channels"])
    load_model_state(model, checkpoint["model"], checkpoint["path"], info["name"])
    return model.to(check_device(device)).eval(), info


def predict_proba(model, images, info, device="cpu"):
    """Class probabilities (N, K) for float images (N, C, H, W) in [0, 1], normalised as in training."""
    x = Normalize(info["mean"], info["std"])(np.asarray(images, dtype=np.float32))
    with no_grad():
        logits = model.eval()(Tensor(to_device(x, device)))
        return to_numpy(F.softmax(logits, dim=1).data)
