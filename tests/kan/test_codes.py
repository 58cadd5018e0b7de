"""One table of basis and activation codes for the eager, C++ and Triton paths (tkam.kan.codes).

The config schema's tables are the one list: the schema's choices, the eager functions, the C++
header generated at build time (and the table the built library reports), and the Triton kernels'
constants all come from or match it; a library that disagrees is not used.
"""

from __future__ import annotations

import re
import types

import pytest
import torch

from tests.helpers import requires_native
from tests.kan.test_triton_kernels import CASES
from tkam.config import BASE_ACTIVATIONS, BASES
from tkam.config.schema import ACTIVATION_CODES, BASIS_CODES, GRID_BASES
from tkam.kan import bases, codes, eager, native
from tkam.kan import triton_kernels as tk
from tkam.kan.arguments import BasisArgs


def test_the_schema_choices_are_the_code_tables() -> None:
    assert set(BASES.values()) == set(BASIS_CODES)
    assert BASE_ACTIVATIONS == tuple(ACTIVATION_CODES)
    assert set(GRID_BASES) <= set(BASIS_CODES)
    for table in (BASIS_CODES, ACTIVATION_CODES):
        assert sorted(table.values()) == list(range(len(table)))  # distinct, dense codes


def test_the_eager_path_implements_every_code() -> None:
    assert set(bases._ACTIVATIONS) == set(ACTIVATION_CODES)
    x = torch.linspace(-2, 2, 7).reshape(7, 1)
    for name in BASIS_CODES:
        degree = 3 if name in ("bspline", "chebyshev") else 0
        M = bases.num_bases(name, 4, degree)
        points = torch.linspace(-2, 2, 5)[None]
        grid = bases.extend_grid(points, degree) if name == "bspline" else points
        b = BasisArgs(grid, torch.tensor(1.5), torch.tensor(1.0), name, degree, M)
        assert eager.basis(x, b).shape == (7, 1, M), name


def test_the_generated_header_holds_the_tables() -> None:
    header = codes.cpp_header()
    basis_enum = re.search(r"enum Basis : int \{(.*)\};", header).group(1)
    act_enum = re.search(r"enum Act : int \{(.*)\};", header).group(1)
    parse = lambda enum, prefix: {
        name.strip()[len(prefix) :].lower(): int(code)
        for name, code in (item.split("=") for item in enum.split(","))
    }
    assert parse(basis_enum, "") == BASIS_CODES
    assert parse(act_enum, "A_") == ACTIVATION_CODES
    assert f"#define TKAM_ABI_VERSION {codes.ABI_VERSION}" in header
    assert f'#define TKAM_CODES "{codes.fingerprint()}"' in header


def test_the_source_writes_no_code_down() -> None:
    source = native.SOURCE.read_text()
    assert f'#include "{native.HEADER}"' in source
    assert "enum Basis" not in source and "enum Act" not in source
    assert re.search(r"tkam_abi_version\(\) \{ return TKAM_ABI_VERSION; \}", source)


@requires_native
def test_the_built_library_reports_the_python_tables() -> None:
    lib = native.library()
    assert lib.tkam_abi_version() == codes.ABI_VERSION
    assert lib.tkam_codes().decode() == codes.fingerprint()


def test_the_triton_constants_are_the_table() -> None:
    value = lambda constant: getattr(constant, "value", constant)  # a triton constexpr, or an int
    for name, code in BASIS_CODES.items():
        assert value(getattr(tk, name.upper())) == code, name
    for name, code in ACTIVATION_CODES.items():
        assert value(getattr(tk, f"A_{name.upper()}")) == code, name


def test_the_triton_cases_cover_every_code() -> None:
    assert {case[0] for case in CASES} == set(BASIS_CODES)
    assert {case[1] for case in CASES} == set(ACTIVATION_CODES)


@pytest.fixture
def fresh_loader():
    native._load.cache_clear()
    yield
    native._load.cache_clear()


@requires_native
@pytest.mark.parametrize("mismatch", ["codes", "abi"])
def test_a_library_with_other_codes_is_not_used(fresh_loader, monkeypatch, mismatch) -> None:
    # The same header (so the same cached library), but Python's table or version says otherwise.
    header = codes.cpp_header()
    stub = types.SimpleNamespace(
        ABI_VERSION=codes.ABI_VERSION + (mismatch == "abi"),
        cpp_header=lambda: header,
        fingerprint=lambda: "bases:other=0" if mismatch == "codes" else codes.fingerprint(),
    )
    monkeypatch.setattr(native, "codes", stub)
    with pytest.warns(RuntimeWarning, match="fused CPU kernels are unavailable"):
        assert native.library() is None
    assert not native.native_applies(torch.zeros(1))
