"""Metrics tests run single-threaded.

On a small shared machine, two intra-op threads of small convolutions can run ~50x slower
than one (each parallel region waits for a descheduled thread); these tests gain nothing from
threads, so they pin one and restore the previous setting afterwards.
"""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
