"""Shared helpers of the benchmark scripts: timing by median of repeats, machine description."""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

RESULTS = Path(__file__).with_name("RESULTS.md")


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def median_time(fn: Callable[[], object], repeats: int, warmup: int = 3) -> tuple[float, float]:
    """Median and standard deviation (seconds) of ``repeats`` timed calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times), (statistics.stdev(times) if len(times) > 1 else 0.0)


def paired_ratio(
    a: Callable[[], object], b: Callable[[], object], pairs: int, warmup: int = 3
) -> tuple[float, float, float, float, float]:
    """``a``'s time over ``b``'s, from ``pairs`` back-to-back pairs of single calls.

    The two calls of a pair run within a few milliseconds of each other, so a change of the
    machine's speed over seconds (other tenants, clocks) scales both; the order within a pair
    alternates, so neither always runs second. Returns the median of the per-pair ratios, its
    quartiles, and the median times of ``a`` and ``b`` (s).
    """
    for _ in range(warmup):
        a()
        b()
    ratios, times_a, times_b = [], [], []
    for k in range(pairs):
        order = (a, b) if k % 2 == 0 else (b, a)
        taken = []
        for fn in order:
            synchronize()
            start = time.perf_counter()
            fn()
            synchronize()
            taken.append(time.perf_counter() - start)
        t_a, t_b = taken if k % 2 == 0 else taken[::-1]
        ratios.append(t_a / t_b)
        times_a.append(t_a)
        times_b.append(t_b)
    q1, median, q3 = statistics.quantiles(ratios, n=4)
    return median, q1, q3, statistics.median(times_a), statistics.median(times_b)


def machine() -> str:
    """A one-line description of where the figures were measured."""
    if torch.cuda.is_available():
        device = torch.cuda.get_device_name(0)
    else:
        device = f"CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    return f"{device}; torch {torch.__version__}, {torch.get_num_threads()} threads"


def read_section(title: str) -> str:
    """The body of the ``## title`` section of benchmarks/RESULTS.md ('' when there is none)."""
    text = RESULTS.read_text() if RESULTS.exists() else ""
    header = f"## {title}\n"
    start = text.find(header)
    if start < 0:
        return ""
    end = text.find("\n## ", start + len(header))
    return text[start + len(header) : end if end >= 0 else len(text)]


def merge_table_rows(old: list[str], new: list[str]) -> list[str]:
    """Markdown table rows: ``old`` with each row whose first cell a ``new`` row shares replaced
    by that row in place, and the other ``new`` rows appended."""
    key = lambda row: row.split("|")[1].strip()  # noqa: E731
    fresh = {key(row): row for row in new}
    merged = [fresh.pop(key(row), row) for row in old]
    return merged + [row for row in new if key(row) in fresh]


def write_section(title: str, body: str) -> None:
    """Replace (or append) the ``## title`` section of benchmarks/RESULTS.md."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    header = f"## {title}\n"
    start = text.find(header)
    section = header + body.rstrip() + "\n"
    if start < 0:
        text = text.rstrip() + "\n\n" + section
    else:
        end = text.find("\n## ", start + len(header))
        text = text[:start] + section + ("\n" + text[end + 1 :] if end >= 0 else "")
    RESULTS.write_text(text)


def benchmark_parser(doc: str) -> argparse.ArgumentParser:
    """The flags every benchmark takes: ``--quick``, ``--device``, ``--no-write``."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few repeats, for a smoke run")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    return parser


def status_kib(field: str) -> int:
    """A ``/proc/self/status`` memory line (``VmRSS``, ``VmHWM``) in KiB."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak() -> int:
    """Reset the resident-set high-water mark (``/proc/self/clear_refs``); the resident KiB now."""
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")
    return status_kib("VmRSS")


def report_peak(baseline_kib: int) -> None:
    """Print, as JSON, the KiB the resident set rose above ``baseline_kib`` at its peak."""
    print(json.dumps({"peak_kib": status_kib("VmHWM") - baseline_kib}))


def peak_in_subprocess(module: str, function: str, *args: object) -> float:
    """MiB reported by ``benchmarks/<module>.<function>(*args)`` run in a fresh interpreter
    (which calls :func:`reset_peak` and :func:`report_peak`), so that allocator caches and the
    torch runtime of this process do not count."""
    call = ", ".join(repr(a) for a in args)
    code = (
        f"import sys; sys.path.insert(0, 'benchmarks'); import {module} as m; m.{function}({call})"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])["peak_kib"] / 1024
