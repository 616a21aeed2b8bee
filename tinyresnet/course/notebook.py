"""Run a tutorial (a jupytext percent script) as a notebook: convert, execute, return the executed notebook.

    >>> nb = execute_tutorial("tutorials/02_skip_connections.py", out_dir="runs/notebooks", quick=True)
    >>> count_images(nb)          # the figures displayed inline

The kernel starts in the tutorial's folder (so ``import _common`` works) with ``TINYRESNET_QUICK`` and
``TINYRESNET_OUT`` set, and one BLAS thread unless the caller's environment says otherwise.
"""

import os
from pathlib import Path


def _require(module, extra="course"):
    try:
        return __import__(module)
    except ImportError as error:
        raise ImportError(f"running tutorials as notebooks needs {module}: pip install -e '.[{extra}]' "
                          f"(or pip install jupytext nbclient ipykernel)") from error


def read_tutorial(script):
    """The tutorial ``script`` (a .py percent file) as an nbformat notebook, not executed."""
    jupytext = _require("jupytext")
    notebook = jupytext.read(str(script))
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return notebook


def execute_tutorial(script, out_dir, quick=True, timeout=600, extra_env=None):
    """Execute the tutorial ``script`` as a notebook and return it with its outputs.

    Its files (figures, output.txt, results.json) go to ``out_dir/<tutorial name>``. A failing cell
    raises ``nbclient.exceptions.CellExecutionError`` naming the cell and the error.
    """
    _require("nbclient")
    from nbclient import NotebookClient

    script = Path(script).resolve()
    notebook = read_tutorial(script)
    env = dict(os.environ, TINYRESNET_QUICK="1" if quick else "0", TINYRESNET_OUT=str(Path(out_dir).resolve()),
               MPLBACKEND="module://matplotlib_inline.backend_inline", PYTHONIOENCODING="utf-8")
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(name, "1")
    env.update(extra_env or {})
    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(script.parent)}})
    client.execute(env=env, cwd=str(script.parent))
    return notebook


def count_images(notebook, mime="image/png"):
    """How many outputs of ``notebook`` carry an image of type ``mime`` (the figures shown inline)."""
    return sum(mime in output.get("data", {}) for cell in notebook.cells if cell.cell_type == "code"
               for output in cell.get("outputs", []))


def error_outputs(notebook):
    """The (cell index, error name, message) of every error output, for reports."""
    return [(i, out.get("ename"), out.get("evalue")) for i, cell in enumerate(notebook.cells)
            if cell.cell_type == "code" for out in cell.get("outputs", []) if out.get("output_type") == "error"]
