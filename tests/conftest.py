"""Shared fixtures: the devices to run on (the GPU ones skip with a reason when absent), the two
kernel tiers (the plain ops and the fast kernels) that the op, gradient and parity tests run under, and
the tutorials' notebook runs."""

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import tinyresnet
from tinyresnet import kernels
from tinyresnet.backend import gpu_available

NO_GPU = "needs CuPy and a CUDA device (pip install 'tinyresnet[gpu]')"
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not gpu_available(), reason=NO_GPU))]


@pytest.fixture(params=DEVICES)
def device(request):
    """Run a test once per available device: "cpu", and "cuda" where CuPy sees a GPU."""
    return request.param


@pytest.fixture(params=["plain", "fast"])
def tier(request):
    """Run a test once on the plain ops and once on the fast kernels (``tinyresnet.use_kernels``).
    A module asks for it with ``pytestmark = pytest.mark.usefixtures("tier")``."""
    with tinyresnet.use_kernels(request.param):
        yield request.param


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(autouse=True)
def _settings_put_back():
    """Every test must leave the kernel tier ("fast") and the compute threads (1) as it found them: both
    are scoped (``use_kernels`` as a context manager; ``kernels.num_threads``, which ``fit`` runs inside),
    so a test that changes them for good has found a leak. It fails, and the next test starts clean."""
    yield
    left = (tinyresnet.get_kernels(), kernels.get_num_threads())
    if left != ("fast", 1):
        tinyresnet.use_kernels("fast")
        kernels.threads._set(1)
        pytest.fail(f"the test left the kernel tier and compute threads at {left}, not ('fast', 1)")


@pytest.fixture(scope="session")
def doc_claims():
    """verify-doc's claims, computed once for the errata and worksheet tests."""
    from tinyresnet.docverify import verify_document
    return verify_document()


@pytest.fixture(scope="module")
def claims(doc_claims):
    return doc_claims


@pytest.fixture(scope="module")
def by_id(doc_claims):
    return {c.id: c for c in doc_claims}


TUTORIAL_SCRIPTS = sorted((Path(__file__).resolve().parents[1] / "tutorials").glob("[0-9][0-9]_*.py"))


@pytest.fixture(scope="session")
def tutorial_runs(tmp_path_factory):
    """{stem: (notebook or the exception, its output folder, seconds)} for every tutorial, run as a notebook in
    quick mode, once per session: tests/test_tutorials.py and tests/test_experiments.py both read these runs."""
    pytest.importorskip("nbclient", reason="notebook execution needs nbclient: pip install -e '.[test]'")
    pytest.importorskip("ipykernel", reason="notebook execution needs ipykernel: pip install -e '.[test]'")
    from tinyresnet.course.notebook import execute_tutorial

    base = tmp_path_factory.mktemp("notebooks")

    def run(script):
        started = time.perf_counter()
        try:
            result = execute_tutorial(script, base, quick=True, timeout=300)
        except Exception as error:          # reported by the test of that tutorial
            result = error
        return script.stem, (result, base / script.stem, time.perf_counter() - started)

    workers = int(os.environ.get("TINYRESNET_TEST_WORKERS", "2"))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        runs = dict(pool.map(run, TUTORIAL_SCRIPTS))
    print("\nnotebook runs (s): " + ", ".join(f"{stem[:2]} {secs:.0f}" for stem, (_, _, secs) in runs.items()))
    return runs


def tutorial_run(runs, stem):
    """(executed notebook, output folder) of one tutorial's run in ``tutorial_runs``; fails the test if it failed."""
    notebook, out, _ = runs[stem]
    if isinstance(notebook, Exception):
        pytest.fail(f"{stem} failed as a notebook:\n{str(notebook)[-3000:]}")
    return notebook, out
