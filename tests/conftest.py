"""Shared fixtures: every test starts from the same global random state.

Library code takes explicit ``torch.Generator`` objects; the reseeding below only pins whatever a
test (or a library default) draws from the global streams, so failures reproduce exactly.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from hypothesis import settings

SEED = 20251013

# Property tests build small models; keep them quick and free of per-example deadlines (the first
# example pays for imports and LAPACK warm-up).
settings.register_profile("tkam", deadline=None, max_examples=40, derandomize=True)
settings.load_profile("tkam")


@pytest.fixture(autouse=True)
def _seed_everything() -> None:
    """Reseed Python, NumPy and torch before each test."""
    random.seed(SEED)
    np.random.seed(SEED)  # noqa: NPY002 - pins the legacy global stream some libraries use
    torch.manual_seed(SEED)


@pytest.fixture
def float64():
    """Run a test with float64 as torch's default dtype, restoring the previous default after."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield torch.float64
    finally:
        torch.set_default_dtype(previous)


@pytest.fixture
def one_thread():
    """Run a test single-threaded: on a shared two-core machine torch's intra-op threads contend
    with other processes and a test of many small tensor ops can slow down tenfold."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
