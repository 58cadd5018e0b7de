"""Metrics tests run single-threaded.

On a small shared machine, two intra-op threads of small convolutions can run ~50x slower
than one (each parallel region waits for a descheduled thread); these tests gain nothing from
threads, so they pin one (the shared ``one_thread`` fixture) and restore the setting afterwards.
"""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _single_thread(one_thread):  # noqa: ANN001 - a fixture
    return
