"""Run-to-run reproducibility of CPU arithmetic that PyTorch does not control.

Intel MKL (PyTorch's CPU BLAS and LAPACK on x86) may run a call on fewer threads than asked
when the machine is busy (``MKL_DYNAMIC``, on by default). A matrix product or least-squares
solve split over another number of threads sums in another order, so two runs of the same seed
drift apart in the last bits whenever the load differs (seen on the grid updates' least squares
and the generator's matrix products). :func:`fix_mkl_threads` switches that off for the process.
"""

from __future__ import annotations

import ctypes
from functools import cache
from pathlib import Path

import torch

__all__ = ["fix_mkl_threads"]


@cache
def fix_mkl_threads() -> bool:
    """Make MKL use exactly the requested threads (``MKL_Set_Dynamic(0)``) in this process.

    Returns:
        True if PyTorch's MKL was found and set; False on builds without MKL (nothing to do).
    """
    if not torch.backends.mkl.is_available():
        return False
    library = Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"
    try:
        set_dynamic = ctypes.CDLL(str(library)).MKL_Set_Dynamic  # C interface: int by value
    except (OSError, AttributeError):
        return False
    set_dynamic.argtypes = [ctypes.c_int]
    set_dynamic.restype = None
    set_dynamic(0)
    return True
