"""Shared fixtures: the devices to run on (the GPU ones skip with a reason when absent), and the two
kernel tiers (the plain ops and the fast kernels) that the op, gradient and parity tests run under."""

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
