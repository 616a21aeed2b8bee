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
def _compute_threads_as_they_were():
    """A test that trains (the training loop calls ``backend.set_num_threads``) leaves the thread count
    as it found it, so that no later test depends on which tests ran before it."""
    before = backend.get_num_threads()
    yield
    if backend.get_num_threads() != before:
        backend.set_num_threads(before)
