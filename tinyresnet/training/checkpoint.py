"""Training checkpoints: one .npz file holding the model, the optimiser, the schedule and the run's state.

Layout of the file (written atomically by ``tinyresnet.serialization.save_npz``, so a crash while
saving leaves the previous checkpoint intact):

- ``model/<state_dict key>``: the model's parameters and buffers (``conv1.weight``, ``bn1.running_mean``, ...)
- ``optimizer/...`` and ``scheduler/...``: their state_dict arrays (momentum buffers, ...)
- ``meta``: one JSON string with everything else: the config, the epoch and step reached, the
  metrics history, the model description used by ``evaluate``/``predict``, random-generator
  states, and the optimiser/scheduler state_dicts with their arrays replaced by references.
"""

import json
import os
import shutil
import zipfile

import numpy as np

from ..nn.module import StateDictMismatch, shorten
from ..serialization import MODEL_PREFIX, atomic_write, load_npz, save_npz

FORMAT = "tinyresnet-checkpoint-1"
REQUIRED_META = ("config", "state", "model_info", "optimizer", "scheduler")


def _pack(tree, prefix, arrays):
    """``tree`` with every ndarray moved into ``arrays`` (under a key built from its path) and replaced
    by ``{"__array__": key}``, so the rest is plain JSON."""
    if isinstance(tree, np.ndarray) or (hasattr(tree, "shape") and hasattr(tree, "dtype") and np.ndim(tree) > 0):
        arrays[prefix] = tree
        return {"__array__": prefix}
    if isinstance(tree, dict):
        return {str(k): _pack(v, f"{prefix}/{k}", arrays) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [_pack(v, f"{prefix}/{i}", arrays) for i, v in enumerate(tree)]
    if isinstance(tree, np.generic) or hasattr(tree, "item"):
        return tree.item()
    return tree


def _unpack(tree, arrays):
    if isinstance(tree, dict):
        if set(tree) == {"__array__"}:
            return arrays[tree["__array__"]]
        return {k: _unpack(v, arrays) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_unpack(v, arrays) for v in tree]
    return tree


def save_checkpoint(path, model_state, optimizer_state, scheduler_state, meta):
    """Write a checkpoint atomically; ``meta`` is any JSON-serialisable dict."""
    arrays = {MODEL_PREFIX + k: v for k, v in model_state.items()}
    packed = dict(meta, format=FORMAT,
                  optimizer=_pack(optimizer_state, "optimizer", arrays),
                  scheduler=_pack(scheduler_state, "scheduler", arrays))
    arrays["meta"] = np.array(json.dumps(packed))
    save_npz(path, arrays)


def read_meta(path):
    """A checkpoint's ``meta`` alone (config, state, model_info, ...), without reading its arrays."""
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
        if meta.get("format") == FORMAT and all(key in meta for key in REQUIRED_META):
            return meta
    except (KeyError, OSError, ValueError, EOFError, zipfile.BadZipFile):
        pass
    return load_checkpoint(path)["meta"]              # the full read names what is wrong with the file


def load_checkpoint(path):
    """Read a checkpoint: ``{"model": state_dict, "optimizer": ..., "scheduler": ..., "meta": {...}}``.

    A missing, truncated or foreign file raises an error naming it.
    """
    if os.path.isdir(path):
        path = os.path.join(path, "last.npz")
    arrays = load_npz(path)              # names the file if it is missing, truncated or corrupt
    if "meta" not in arrays:
        raise ValueError(f"{path} is a .npz file but not a tinyresnet training checkpoint (no 'meta' entry); "
                         f"weights saved with model.save() load with model.load()")
    try:
        meta = json.loads(str(arrays.pop("meta")))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: the checkpoint's metadata is damaged: {e}") from e
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: checkpoint format {meta.get('format')!r}, expected {FORMAT!r}")
    lacking = [key for key in REQUIRED_META if key not in meta]
    if lacking:
        raise ValueError(f"{path}: the checkpoint's metadata lacks {', '.join(lacking)}, so it cannot be resumed or "
                         f"evaluated; its weights alone load with model.load({path!r})")
    model = {k[len(MODEL_PREFIX):]: v for k, v in arrays.items() if k.startswith(MODEL_PREFIX)}
    return {"model": model,
            "optimizer": _unpack(meta.pop("optimizer"), arrays),
            "scheduler": _unpack(meta.pop("scheduler"), arrays),
            "meta": meta, "path": path}


def load_model_state(model, state, path, saved_model_name=None):
    """Load a checkpoint's model ``state`` into ``model``, strictly, in one check.

    ``model.load_state_dict`` checks the keys and shapes before it writes anything; when they do not
    fit, its ``StateDictMismatch`` is raised again as a ValueError that speaks of the checkpoint:
    the file ``path``, which keys it lacks, which it has that the model does not, which shapes
    differ, and (given ``saved_model_name``) the ``--model`` it was written for. The model is then
    left unchanged. Returns ``IncompatibleKeys`` as ``load_state_dict`` does.
    """
    try:
        return model.load_state_dict(state)
    except StateDictMismatch as e:
        lines = [f"{path} does not fit this {type(model).__name__}:"]
        if e.missing_keys:
            lines.append(f"  missing from the checkpoint ({len(e.missing_keys)}): {shorten(e.missing_keys, 8)}")
        if e.unexpected_keys:
            lines.append(f"  not in the model ({len(e.unexpected_keys)}): {shorten(e.unexpected_keys, 8)}")
        if e.shape_mismatches:
            wrong = [f"{key} (checkpoint {theirs}, model {ours})" for key, theirs, ours in e.shape_mismatches]
            lines.append(f"  different shapes ({len(wrong)}): {shorten(wrong, 5)}")
        if saved_model_name:
            lines.append(f"  the checkpoint was written for --model {saved_model_name}; build that model "
                         f"(with the same num_classes and in_channels) to load it")
        raise ValueError("\n".join(lines)) from None


def copy_atomically(source, target):
    """Copy a file so that ``target`` is at every moment either the old file or the complete new one."""
    with open(source, "rb") as src, atomic_write(target) as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
