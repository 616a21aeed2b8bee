"""Writing files atomically, and saving and loading arrays as .npz.

``atomic_write`` is the one way tinyresnet writes a file that must never be seen half-written
(checkpoints, weights, the metrics log, figures): it writes a temporary file in the same folder,
flushes it to disk, then renames it over the target. An interrupted write leaves the previous file
intact and no temporary file behind.
"""

import contextlib
import os
import re
import secrets
import zipfile

import numpy as np

from .backend import to_numpy

_TEMPORARY = re.compile(r"\.tmp-[0-9a-f]{16}-.")      # the names atomic_write gives its temporary files


@contextlib.contextmanager
def atomic_write(path, mode="wb", **open_args):
    """``with atomic_write(path) as f: ...``: ``f`` is a new file that replaces ``path`` only when the block ends.

    ``mode`` is ``"wb"`` (bytes) or ``"w"`` (text; ``open_args`` such as ``encoding`` or ``newline``
    go to ``open``). The file is written as ``.tmp-<random>-<name>`` beside ``path`` (so the rename
    stays on one file system), flushed to disk and renamed over ``path``; until then readers see the
    old file. If the block raises (also Ctrl-C), the temporary file is removed and ``path`` is untouched.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write: mode must be 'w' or 'wb', got {mode!r}")
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".tmp-{secrets.token_hex(8)}-{os.path.basename(path)}")
    try:
        # "x": created here, never someone else's file; permissions as open() gives any new file
        with open(tmp, mode.replace("w", "x"), **open_args) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)       # atomic on POSIX and Windows
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def remove_temporary_files(folder):
    """Delete what interrupted ``atomic_write`` calls left in ``folder``: a process killed outright
    (``kill -9``, a power cut) gets no chance to remove its ``.tmp-<random>-<name>`` file. Only
    names of exactly that form are touched. Returns the names removed."""
    removed = []
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        for name in sorted(os.listdir(folder)):
            if _TEMPORARY.match(name):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(os.path.join(folder, name))
                    removed.append(name)
    return removed


def save_npz(path, arrays):
    """Write ``{name: array}`` to ``path`` (.npz) atomically. Device arrays are copied to the host."""
    host = {name: to_numpy(a) for name, a in arrays.items()}
    with atomic_write(path) as f:
        np.savez(f, **host)


def load_npz(path):
    """Read a .npz written by ``save_npz`` into a dict of NumPy arrays, failing clearly if it is damaged."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise ValueError(f"{path} is not a readable .npz file (truncated or corrupt?): {e}") from e


# A training checkpoint (``tinyresnet.training.checkpoint``) keeps the model's state_dict under this
# prefix, beside ``meta`` and the optimiser's arrays; a weights file (``Module.save``) holds it bare.
MODEL_PREFIX = "model/"


def load_weights(path):
    """The model's state_dict from ``path``: a weights file written by ``Module.save`` (or
    ``tinyresnet convert-torch``), or a training checkpoint (``last.npz``/``best.npz``), whose
    ``model/`` entries are taken and the optimiser's state and metadata left out."""
    arrays = load_npz(path)
    if "meta" in arrays and any(key.startswith(MODEL_PREFIX) for key in arrays):
        return {key[len(MODEL_PREFIX):]: value for key, value in arrays.items() if key.startswith(MODEL_PREFIX)}
    return arrays
