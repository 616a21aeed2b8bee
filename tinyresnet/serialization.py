"""Saving and loading arrays as .npz, written atomically.

``save_npz`` writes to a temporary file in the same folder, flushes it to disk, then renames it
over the target: an interrupted save leaves the previous file intact, never a half-written one.
"""

import os
import tempfile
import zipfile

import numpy as np

from .backend import to_numpy


def save_npz(path, arrays):
    """Write ``{name: array}`` to ``path`` (.npz) atomically. Device arrays are copied to the host."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    host = {name: to_numpy(a) for name, a in arrays.items()}
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **host)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)       # atomic on POSIX and Windows
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


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
