"""Building and loading the fused kernels (tkam.kan.native), and the eager fallback."""

from __future__ import annotations

import pytest
import torch

from tkam.config import KANConfig
from tkam.kan import native, ops
from tkam.kan.layer import UnivariateLayer


@pytest.fixture
def fresh_loader():
    """Forget the loaded library for one test (and again afterwards, so later tests reload)."""
    native._load.cache_clear()
    yield
    native._load.cache_clear()


def test_the_library_is_cached_per_source_compiler_and_cpu(tmp_path, monkeypatch) -> None:
    compiler = native._compiler()
    if compiler is None:
        pytest.skip("no C++ compiler")
    monkeypatch.setenv("TKAM_CACHE", str(tmp_path))
    path = native.library_path(compiler)
    assert path.parent == tmp_path / "kernels" and path.suffix == ".so"
    monkeypatch.setattr(native, "_cpu_signature", lambda: "another cpu")
    assert native.library_path(compiler) != path


def test_a_failing_build_reports_the_compiler_output(tmp_path, monkeypatch) -> None:
    if native._compiler() is None:
        pytest.skip("no C++ compiler")
    broken = tmp_path / "broken.cpp"
    broken.write_text("int f( { return 0; }\n")
    monkeypatch.setenv("TKAM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(native, "SOURCE", broken)
    with pytest.raises(native.KernelBuildError, match="broken.cpp"):
        native.build()
    assert not list((tmp_path / "cache" / "kernels").glob("*.so"))  # nothing half-written


def test_without_a_compiler_the_layers_warn_once_and_run_eager(fresh_loader, monkeypatch):
    monkeypatch.setattr(native, "_compiler", lambda: None)
    with pytest.warns(RuntimeWarning, match="fused CPU kernels are unavailable"):
        assert native.library() is None
    assert native.library() is None  # cached: no second warning
    assert not ops.native_applies(torch.zeros(1))
    config = KANConfig(basis="rbf", base_activation="silu")
    layer = UnivariateLayer(4, 3, config, rng=torch.Generator().manual_seed(0)).double()
    x = torch.randn(5, 4, dtype=torch.float64)
    z = torch.randn(5, 3, 4, dtype=torch.float64)
    torch.testing.assert_close(layer.summed(x), ops.eager_summed(x, layer.arguments()))
    torch.testing.assert_close(layer.pairwise(z), ops.eager_pairwise(z, layer.arguments()))


def test_the_environment_can_switch_the_kernels_off(fresh_loader, monkeypatch) -> None:
    monkeypatch.setenv("TKAM_NATIVE", "0")
    assert native.library() is None


def test_tkam_native_understands_on_and_off_and_warns_about_anything_else() -> None:
    assert native.native_requested({}) is True
    assert native.native_requested({"TKAM_NATIVE": "0"}) is False
    assert native.native_requested({"TKAM_NATIVE": "off"}) is False
    assert native.native_requested({"TKAM_NATIVE": "1"}) is True
    with pytest.warns(RuntimeWarning, match="TKAM_NATIVE='banana' is neither 1 nor 0"):
        assert native.native_requested({"TKAM_NATIVE": "banana"}) is True
