"""Shared fixtures: the devices to run on (the GPU ones skip with a reason when absent)."""

import numpy as np
import pytest

from tinyresnet import backend
from tinyresnet.backend import gpu_available

NO_GPU = "needs CuPy and a CUDA device (pip install 'tinyresnet[gpu]')"
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not gpu_available(), reason=NO_GPU))]


@pytest.fixture(params=DEVICES)
def device(request):
    """Run a test once per available device: "cpu", and "cuda" where CuPy sees a GPU."""
    return request.param


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(autouse=True)
def _one_compute_thread():
    """Every test starts on one compute thread, whatever ran before it: the training loop calls
    ``backend.set_num_threads`` (also from module-scoped fixtures that train once), and a test that
    counts slices or buffers must not depend on which tests ran first. Tests of the threaded paths
    ask for threads themselves."""
    if backend.get_num_threads() != 1:
        backend.set_num_threads(1)


@pytest.fixture
def restore_threads():
    """For a test that calls ``backend.set_num_threads``: the thread count and BLAS's own put back after it."""
    from threadpoolctl import threadpool_limits
    before = backend.get_num_threads()
    with threadpool_limits(user_api="blas"):              # puts BLAS's thread count back on exit
        yield
        backend.set_num_threads(before)
