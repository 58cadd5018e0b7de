"""Build and load the fused CPU kernels (``csrc/kan_kernels.cpp``), and the one rule for whether
native code (those kernels, or the Triton kernels on CUDA) runs: :func:`native_applies`.

The kernels are plain C++ with OpenMP behind a C interface, compiled on first use with the
machine's C++ compiler (``$CXX``, else ``g++``, ``c++`` or ``clang++``) for this CPU
(``-march=native``) in a few seconds, and cached under ``$TKAM_CACHE/kernels`` (default
``~/.cache/tkam/kernels``) by a hash of the source, the generated header of codes
(:func:`tkam.kan.codes.cpp_header`), the compiler and the CPU, so a cached library is never used
on a machine it was not built for. The library links the OpenMP runtime that PyTorch has already
loaded, so both share one thread pool and ``torch.set_num_threads``. When it loads, its interface
version and code table must be Python's (:mod:`tkam.kan.codes`).

Where no compiler is found, the build fails or the library disagrees with Python, :func:`library`
returns ``None`` after one warning and the layers fall back to the eager PyTorch code.
:func:`main` builds the library ahead of time (the Makefile's install step calls it) and prints
where it is. Only :mod:`tkam.kan.native_calls` calls the library's entry points.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import warnings
from functools import lru_cache
from pathlib import Path

import torch  # torch's OpenMP runtime must be loaded before the library's
from torch import Tensor

from tkam.files import atomic_path, cache_root
from tkam.kan import codes, triton_kernels

__all__ = [
    "library",
    "library_path",
    "build",
    "KernelBuildError",
    "cache_dir",
    "native_requested",
    "native_applies",
    "triton_enabled",
]

SOURCE = Path(__file__).with_name("csrc") / "kan_kernels.cpp"
#: The name under which the source includes :func:`tkam.kan.codes.cpp_header`.
HEADER = "kan_codes.h"
FLAGS = (
    "-O3",
    "-march=native",
    "-mprefer-vector-width=512",
    "-fopenmp",
    "-std=c++17",
    "-shared",
    "-fPIC",
    # Explicit std::fma where wanted; no silent contraction, so results do not depend on it.
    "-ffp-contract=off",
    "-fno-math-errno",
    "-fno-trapping-math",
)
_LOCK = threading.Lock()

_P = ctypes.c_void_p
_I64 = ctypes.c_int64
_INT = ctypes.c_int
_SIGNATURES: dict[str, tuple] = {
    "tkam_abi_version": (_INT, ()),
    "tkam_codes": (ctypes.c_char_p, ()),
    "eval_fwd": (None, (_P, _P, _P, _P, _P, _P, _P, _I64, _P, _INT)),
    "eval_bwd": (
        None,
        (_P, _P, _P, _P, _P, _P, _P, _P, _P, _I64, _P, _P, _P, _P, _P, _P, _INT),
    ),
    "features_fwd": (None, (_P, _P, _P, _P, _I64, _INT, _INT, _P, _INT)),
    "features_bwd": (None, (_P, _P, _P, _P, _P, _I64, _INT, _INT, _P, _P, _INT)),
    "weights_fwd": (None, (_P, _P, _P, _I64, _I64, _I64, _P, _INT)),
    "weights_bwd": (None, (_P, _P, _P, _I64, _I64, _I64, _P, _P, _INT)),
    "tkam_invert_shared_f32": (None, (_P, _P, _P, _P, _I64, _I64, _I64, _I64, _P, _P, _INT)),
    "tkam_invert_shared_sparse_f32": (
        None,
        (_P, _P, _P, _P, _I64, _I64, _I64, _I64, _P, _P, _INT),
    ),
    "tkam_invert_shared_lanes_f32": (_INT, (_P, _P, _P, _I64, _I64, _I64, _I64, _P, _P, _INT)),
    "tkam_invert_rows_f32": (None, (_P, _P, _P, _P, _P, _P, _I64, _I64, _I64, _P, _P, _INT)),
    "tkam_guide_table_f32": (None, (_P, _I64, _I64, _I64, _P, _INT)),
    "tkam_quadrature_table_f32": (
        None,
        (_P, _P, _P, _P, _P, _P, _I64, _I64, _I64, _INT, _INT, _P, _P, _P, _INT),
    ),
}


class KernelBuildError(RuntimeError):
    """The fused kernels could not be compiled; the message holds the compiler's output."""


def cache_dir() -> Path:
    """Where built libraries are kept: ``$TKAM_CACHE/kernels`` or ``~/.cache/tkam/kernels``."""
    return cache_root() / "kernels"


def _compiler() -> str | None:
    for name in (os.environ.get("CXX"), "g++", "c++", "clang++"):
        if name and shutil.which(name):
            return name
    return None


def _cpu_signature() -> str:
    # -march=native code must not run on another CPU: key the cache on the model and its flags.
    try:
        text = Path("/proc/cpuinfo").read_text()
        lines = [ln for ln in text.splitlines() if ln.startswith(("model name", "flags"))]
        return "\n".join(sorted(set(lines)))
    except OSError:
        return platform.processor() + platform.machine()


def library_path(compiler: str) -> Path:
    """The cache path of the library this source, compiler and CPU give."""
    version = subprocess.run(
        [compiler, "--version"], capture_output=True, text=True, check=False
    ).stdout
    key = hashlib.sha256()
    header = codes.cpp_header().encode()
    for part in (SOURCE.read_bytes(), header, " ".join(FLAGS).encode(), version.encode()):
        key.update(part)
    key.update(_cpu_signature().encode())
    return cache_dir() / f"tkam_kan_{key.hexdigest()[:16]}.so"


def build(force: bool = False) -> Path:
    """Compile the kernels (unless cached) and return the library's path.

    Raises:
        KernelBuildError: no compiler, or the compiler failed (its output is in the message).
    """
    compiler = _compiler()
    if compiler is None:
        raise KernelBuildError("no C++ compiler found (set CXX or install g++)")
    target = library_path(compiler)
    if target.exists() and not force:
        return target
    print(
        f"tkam: compiling the fused KAN kernels for this CPU with {compiler} (once, cached in "
        f"{target.parent}; about 10 s on an idle machine)",
        file=sys.stderr,
        flush=True,
    )
    # Built beside the target and renamed: concurrent builds (torchrun ranks) never see half a file.
    with atomic_path(target, suffix=".so") as temporary, tempfile.TemporaryDirectory() as include:
        (Path(include) / HEADER).write_text(codes.cpp_header())
        result = subprocess.run(
            [compiler, *FLAGS, f"-I{include}", str(SOURCE), "-o", str(temporary)],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-15:])
            raise KernelBuildError(f"{compiler} failed to build {SOURCE.name}:\n{tail}")
    return target


def _bind(lib: ctypes.CDLL) -> ctypes.CDLL:
    for name, (restype, argtypes) in _SIGNATURES.items():
        names = [name] if name.startswith("tkam_") else [f"tkam_{name}_f32", f"tkam_{name}_f64"]
        for full in names:
            fn = getattr(lib, full)
            fn.restype = restype
            fn.argtypes = argtypes
    if lib.tkam_abi_version() != codes.ABI_VERSION:
        raise KernelBuildError("the cached kernel library has another interface version")
    if lib.tkam_codes().decode() != codes.fingerprint():
        raise KernelBuildError(
            f"the kernel library was built with other basis/activation codes "
            f"({lib.tkam_codes().decode()}, Python has {codes.fingerprint()})"
        )
    return lib


_ON, _OFF = ("1", "on", "true", "yes"), ("0", "off", "false", "no")


def native_requested(environ: dict[str, str] | None = None) -> bool:
    """Whether ``TKAM_NATIVE`` asks for the fused kernels (unset: yes). Only ``1``/``0`` (or
    on/off, true/false, yes/no) are understood; any other value is warned about and means on."""
    value = (os.environ if environ is None else environ).get("TKAM_NATIVE", "1").strip().lower()
    if value in _OFF:
        return False
    if value not in _ON:
        warnings.warn(
            f"TKAM_NATIVE={value!r} is neither 1 nor 0: the fused kernels are used (set "
            "TKAM_NATIVE=0 to turn them off)",
            RuntimeWarning,
            stacklevel=4,
        )
    return True


@lru_cache(maxsize=1)
def _load() -> ctypes.CDLL | None:
    if not native_requested():
        return None
    with _LOCK:
        try:
            return _bind(ctypes.CDLL(str(build())))
        except (KernelBuildError, OSError, AttributeError) as exc:
            warnings.warn(
                f"tkam: the fused CPU kernels are unavailable ({exc}); using the eager PyTorch "
                "code, which is several times slower",
                RuntimeWarning,
                stacklevel=3,
            )
            return None


def library() -> ctypes.CDLL | None:
    """The loaded kernel library, built on first use; ``None`` (after one warning) without it.

    ``TKAM_NATIVE=0`` in the environment skips it (the eager code is used); a value other than
    1 or 0 is warned about (see :func:`native_requested`).
    """
    return _load()


@torch.compiler.assume_constant_result
def _library_available() -> bool:
    return library() is not None


@torch.compiler.assume_constant_result
@lru_cache(maxsize=1)
def triton_enabled() -> bool:
    """Whether CUDA tensors get the Triton kernels (triton imported, so a CUDA device or
    ``TRITON_INTERPRET=1``); ``TKAM_TRITON=0`` switches them off."""
    return os.environ.get("TKAM_TRITON", "1") != "0" and triton_kernels.available()


def native_applies(*tensors: Tensor, kernel: str = "fused", cpu_float32: bool = False) -> bool:
    """Whether native code runs for these tensors: the one rule of every caller.

    True for ``kernel = "fused"`` (the layers' setting; ``"eager"`` is always false) and either
    CPU tensors with the built library or CUDA tensors with triton (see :func:`triton_enabled`).
    ``cpu_float32``: for the kernels that exist for CPU float32 tensors only (the prior's
    quadrature table and inverse-transform sampling).
    """
    if kernel != "fused":
        return False
    devices = {t.device.type for t in tensors}
    if cpu_float32:
        float32 = all(t.dtype == torch.float32 for t in tensors)
        return devices == {"cpu"} and float32 and _library_available()
    if devices == {"cuda"}:
        return triton_enabled()
    return devices == {"cpu"} and _library_available()


def main() -> int:
    """Build (or find) the library and print its path; 1 (after one line) if it cannot be built."""
    try:
        print(build())
    except KernelBuildError as exc:
        print(f"tkam: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
