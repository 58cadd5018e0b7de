"""The univariate-function layer (maths 2.1-2.3, 2.6 and 10 item 2)."""

from __future__ import annotations

import pytest
import torch

from tkam.config import KANConfig
from tkam.kan.layer import UnivariateLayer, least_squares

ALL_BASES = ("bspline", "rbf", "rswaf", "fourier", "chebyshev")
GRID_BASES = ("bspline", "rbf", "rswaf")


def make_layer(
    basis: str, in_dim: int = 3, out_dim: int = 2, seed: int = 0, **kw
) -> UnivariateLayer:
    options = {"grid_size": 6, "grid_range": (-1.2, 1.2), "eps_scale": 1.0}
    if basis == "chebyshev":
        options["init_tau"] = 1.1
    options.update(kw)
    config = KANConfig(basis=basis, **options)
    layer = UnivariateLayer(in_dim, out_dim, config, rng=torch.Generator().manual_seed(seed))
    return layer.double()


def smooth_coefficients(layer: UnivariateLayer, seed: int) -> None:
    """Replace the (rough, random) initial curves by smooth ones fitted on the initial range."""
    g = torch.Generator().manual_seed(seed)
    # The initial range, not the B-spline's extended knots (where the bases no longer sum to one).
    lo, hi = layer.domain[0].tolist()
    x = torch.linspace(lo, hi, 400, dtype=torch.float64)[:, None].repeat(1, layer.in_dim)
    freq = torch.rand(layer.in_dim, layer.out_dim, generator=g, dtype=torch.float64) * 2 + 0.5
    target = torch.sin(freq * x[..., None]) + 0.3 * x[..., None] ** 2  # (n, I, O)
    design = layer.basis(x).permute(1, 0, 2)
    with torch.no_grad():
        layer.coef.copy_(least_squares(design, target.permute(1, 0, 2)).permute(0, 2, 1))


def triangular_inputs(seed: int, n: int = 2000, width: int = 3) -> torch.Tensor:
    """Inputs ``(n, width)`` from a triangular law on [-1.1, 1.1]: denser in the middle, so grid
    updates move the knots inwards."""
    u = torch.rand(2, n, width, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return 1.1 * (u[0] + u[1] - 1)


def relative_rms(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest, over functions (i, o), RMS of ``a - b`` relative to the RMS of ``b``."""
    return ((a - b).square().mean(0).sqrt() / b.square().mean(0).sqrt()).max().item()


# ------------------------------------------------------------------------------------------------
# Spec 10 item 2: the default layer


def test_default_bspline_layer_shapes_and_grid_update() -> None:
    config = KANConfig(basis="bspline", spline_degree=3, grid_size=5, grid_range=(0.0, 1.0))
    layer = UnivariateLayer(5, 2, config, rng=torch.Generator().manual_seed(0))
    assert layer.grid.shape == (5, 5 + 1 + 2 * 3)
    x = torch.rand(3, 5, generator=torch.Generator().manual_seed(1))
    out = layer(x)
    assert out.shape == (3, 5, 2)  # sample axis first: (S, I, O)
    assert torch.isfinite(out).all()
    layer.update_grid(x)
    assert layer.grid.shape == (5, 12)
    assert torch.isfinite(layer.grid).all() and torch.isfinite(layer.coef).all()
    assert (layer.grid.diff(dim=1) >= 0).all()
    assert torch.isfinite(layer(x)).all()


# ------------------------------------------------------------------------------------------------
# Structure and evaluation layouts


@pytest.mark.parametrize("basis", ALL_BASES)
def test_forward_is_base_branch_plus_weighted_spline(basis: str) -> None:
    layer = make_layer(basis, in_dim=3, out_dim=4)
    x = torch.randn(7, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    spline = layer.spline(x)
    if basis == "chebyshev":  # no base branch and no spline weight (maths 2.1)
        assert not hasattr(layer, "w_base") and not hasattr(layer, "w_spline")
        expected = spline
    else:
        expected = layer.w_base * torch.nn.functional.silu(x)[..., None] + layer.w_spline * spline
    torch.testing.assert_close(layer(x), expected)


def test_base_activation_none_switches_the_base_branch_off() -> None:
    layer = make_layer("rbf", base_activation="none")
    assert not hasattr(layer, "w_base")
    x = torch.randn(5, 3, dtype=torch.float64)
    torch.testing.assert_close(layer(x), layer.w_spline * layer.spline(x))


@pytest.mark.parametrize("basis", ALL_BASES)
def test_pairwise_evaluates_every_function_at_its_own_input(basis: str) -> None:
    I, O, S = 3, 4, 6
    layer = make_layer(basis, in_dim=I, out_dim=O, seed=3)
    z = torch.randn(S, O, I, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    out = layer.pairwise(z)
    assert out.shape == (S, O, I)
    for o in range(O):
        # forward on the row z[:, o, :] gives phi_{i->o'}(z_{s,o,i}) for all o'; keep o' = o.
        torch.testing.assert_close(out[:, o, :], layer(z[:, o, :])[:, :, o])


@pytest.mark.parametrize("activation", ["silu", "none"])
@pytest.mark.parametrize("basis", ALL_BASES)
def test_summed_equals_the_sum_over_inputs_of_forward(basis: str, activation: str) -> None:
    layer = make_layer(basis, in_dim=5, out_dim=4, seed=6, base_activation=activation)
    x = torch.randn(9, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    out = layer.summed(x)
    assert out.shape == (9, 4)
    torch.testing.assert_close(out, layer(x).sum(dim=1))
    # Gradients agree too (the generator trains through summed).
    (g1,) = torch.autograd.grad(out.square().sum(), layer.coef)
    (g2,) = torch.autograd.grad(layer(x).sum(dim=1).square().sum(), layer.coef)
    torch.testing.assert_close(g1, g2)


@pytest.mark.parametrize("basis", ALL_BASES)
def test_at_nodes_layout(basis: str) -> None:
    layer = make_layer(basis, in_dim=3, out_dim=2, seed=5)
    nodes = torch.randn(3, 11, dtype=torch.float64)
    out = layer.at_nodes(nodes)
    assert out.shape == (11, 3, 2)
    torch.testing.assert_close(out, layer(nodes.T))


def test_tau_is_a_buffer_for_bsplines_and_a_parameter_when_trainable() -> None:
    names = lambda layer: {n for n, _ in layer.named_parameters()}
    assert "tau" not in names(make_layer("bspline", tau_trainable=True))
    assert "tau" in names(make_layer("rbf", tau_trainable=True))
    assert "tau" not in names(make_layer("rbf", tau_trainable=False))
    assert "tau" in dict(make_layer("rbf", tau_trainable=False).named_buffers())


@pytest.mark.parametrize("basis", GRID_BASES)
def test_initial_curves_interpolate_small_targets_at_the_grid_points(basis: str) -> None:
    # Spec 2.3: targets (U - 1/2) eps_scale / G at the G+1 grid points, fitted exactly.
    G, eps_scale = 6, 0.5
    layer = make_layer(basis, in_dim=4, out_dim=3, grid_size=G, eps_scale=eps_scale)
    points = torch.linspace(-1.2, 1.2, G + 1, dtype=torch.float64)[:, None].repeat(1, 4)
    values = layer.spline(points)  # (G+1, I, O)
    bound = eps_scale / (2 * G)
    assert values.abs().max().item() <= bound * (1 + 1e-6)
    assert values.abs().max().item() > bound / 4  # not degenerate
    # Different functions got different random targets.
    assert values.std().item() > 0


def test_fourier_and_chebyshev_initial_coefficient_scales() -> None:
    # Spec 2.3: Fourier coefficients decay like 1/(k+1)^2; Chebyshev are tiny (1/(I(D+1))).
    I, O, G = 8, 8, 5
    fourier = make_layer("fourier", in_dim=I, out_dim=O, grid_size=G)
    coef = fourier.coef.detach()  # (I, O, 2(G+1)): cosines, then sines
    std0 = torch.cat([coef[..., 0], coef[..., G + 1]]).std()
    std_last = torch.cat([coef[..., G], coef[..., 2 * G + 1]]).std()
    assert 10 < (std0 / std_last).item() < 100  # (G+1)^2 = 36 in expectation
    cheb = make_layer("chebyshev", in_dim=I, out_dim=O, spline_degree=3)
    expected_std = (2.0 / (I * (O + 4))) ** 0.5 / (I * 4)
    assert 0.7 < cheb.coef.detach().std().item() / expected_std < 1.3


# ------------------------------------------------------------------------------------------------
# Grid updates (maths 2.6 and 10 item 2): the refit keeps the curve and the grid shapes


@pytest.mark.parametrize(
    ("basis", "tolerance"),
    [("bspline", 0.01), ("rswaf", 0.02), ("rbf", 0.03)],
)
def test_grid_update_keeps_the_curve_on_the_inputs(basis: str, tolerance: float) -> None:
    layer = make_layer(basis, in_dim=3, out_dim=2, grid_size=6, seed=8)
    smooth_coefficients(layer, seed=9)
    x = triangular_inputs(seed=10)
    before = layer.spline(x).detach()
    old_grid = layer.grid.clone()
    layer.update_grid(x)
    assert layer.grid.shape == old_grid.shape
    assert not torch.allclose(layer.grid, old_grid)  # the grid did move
    after = layer.spline(x).detach()
    error = relative_rms(after, before)
    print(f"grid refit {basis}: relative RMS error {error:.2e}")
    assert error < tolerance, f"{basis}: relative RMS refit error {error:.3g}"


def test_rbf_grid_refit_uses_the_new_bandwidth() -> None:
    # The reference refits with the old bandwidth and then changes it (maths 2.6 step 7), which
    # costs ~10 % relative error when the grid's extent shrinks by 8 %; tkam refits with the
    # bandwidth of the new grid, so the curve is kept.
    layer = make_layer("rbf", in_dim=3, out_dim=2, grid_size=6, seed=8)
    smooth_coefficients(layer, seed=9)
    x = triangular_inputs(seed=10)
    before = layer.spline(x).detach()
    old_bandwidth = layer.bandwidth.clone()
    layer.update_grid(x)
    grid = layer.grid
    expected = (grid.max() - grid.min()) / (grid.shape[1] - 1)
    assert layer.bandwidth.item() == pytest.approx(expected.item())
    assert layer.bandwidth.item() < old_bandwidth.item()  # grid extent 2.2 instead of 2.4
    error = relative_rms(layer.spline(x).detach(), before)
    assert error < 0.03, f"relative RMS refit error {error:.3g}"


def test_compat_rbf_refit_fits_with_the_old_bandwidth_then_changes_it() -> None:
    # generator.compat_rbf_refit: the reference's order (least squares with the old bandwidth,
    # then the new grid's bandwidth), which moves the curve it has just fitted.
    plain = make_layer("rbf", in_dim=3, out_dim=2, grid_size=6, seed=8)
    compat = make_layer("rbf", in_dim=3, out_dim=2, grid_size=6, seed=8, compat_rbf_refit=True)
    smooth_coefficients(plain, seed=9)
    smooth_coefficients(compat, seed=9)
    x = triangular_inputs(seed=10)
    before = plain.spline(x).detach()
    old_bandwidth = compat.bandwidth.clone()
    plain.update_grid(x)
    compat.update_grid(x)
    torch.testing.assert_close(compat.grid, plain.grid)
    torch.testing.assert_close(compat.bandwidth, plain.bandwidth)  # the new one, in both
    # Its coefficients are the fit with the old bandwidth: with that bandwidth put back, the
    # curve is kept; with the bandwidth it keeps, it is not.
    moved = relative_rms(compat.spline(x).detach(), before)
    compat.bandwidth.copy_(old_bandwidth)
    kept = relative_rms(compat.spline(x).detach(), before)
    assert kept < 0.03, f"refit error with the old bandwidth {kept:.3g}"
    assert moved > 3 * relative_rms(plain.spline(x).detach(), before), moved


@pytest.mark.parametrize("basis", GRID_BASES)
def test_grid_update_places_knots_on_the_input_range(basis: str) -> None:
    G, ratio = 5, 0.05
    layer = make_layer(basis, in_dim=2, out_dim=2, grid_size=G, grid_update_ratio=ratio)
    g = torch.Generator().manual_seed(11)
    x = torch.stack(
        [
            torch.rand(1000, generator=g, dtype=torch.float64) * 3 - 1,
            torch.randn(1000, generator=g, dtype=torch.float64),
        ],
        dim=1,
    )
    layer.update_grid(x)
    k = layer.degree if basis == "bspline" else 0
    core = layer.grid[:, k : k + G + 1]
    xs = x.sort(dim=0).values
    # Spec 2.6 steps 3-5: ends at the sample min/max, interior a blend of quantiles and uniform.
    torch.testing.assert_close(core[:, 0], xs[0])
    torch.testing.assert_close(core[:, -1], xs[-1])
    index = torch.arange(G) * 1000 // G
    adaptive = torch.cat([xs[index], xs[-1:]]).T
    uniform = xs[0][:, None] + (xs[-1] - xs[0])[:, None] * torch.linspace(
        0, 1, G + 1, dtype=torch.float64
    )
    torch.testing.assert_close(core, ratio * uniform + (1 - ratio) * adaptive)
    if basis == "rbf":
        expected = (layer.grid.max() - layer.grid.min()) / G
        torch.testing.assert_close(layer.bandwidth, expected)


@pytest.mark.parametrize("basis", GRID_BASES)
def test_grid_update_on_rank_deficient_inputs_stays_finite(basis: str) -> None:
    layer = make_layer(basis, in_dim=3, out_dim=2, grid_size=8)
    g = torch.Generator().manual_seed(12)
    x = torch.rand(200, 3, generator=g, dtype=torch.float64) * 2 - 1
    x[:180, 0] = 0.3  # 90 % repeated values: many knots coincide
    x[:, 1] = -0.7  # a fully collapsed row
    x[::2, 2] = torch.tensor([0.1, 0.2], dtype=torch.float64).repeat(50)  # only a few values
    layer.update_grid(x)
    assert layer.grid.shape == (3, 9 + (6 if basis == "bspline" else 0))
    for name, tensor in [*layer.named_parameters(), *layer.named_buffers()]:
        assert torch.isfinite(tensor).all(), name
    assert (layer.grid.diff(dim=1) >= 0).all()
    out = layer(torch.rand(50, 3, dtype=torch.float64) * 2 - 1)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("basis", GRID_BASES)
def test_grid_update_leaves_a_collapsed_row_unchanged(basis: str) -> None:
    layer = make_layer(basis, in_dim=2, out_dim=2, grid_size=6, seed=13)
    smooth_coefficients(layer, seed=14)
    probe = torch.linspace(-1.0, 1.0, 101, dtype=torch.float64)[:, None].repeat(1, 2)
    before = layer.spline(probe).detach()
    x = torch.rand(300, 2, generator=torch.Generator().manual_seed(15), dtype=torch.float64)
    x[:, 1] = 0.3  # row 1 collapses: its grid is kept, so its function must be kept too
    layer.update_grid(x)
    after = layer.spline(probe).detach()
    torch.testing.assert_close(after[:, 1], before[:, 1], rtol=0, atol=1e-6)


@pytest.mark.parametrize("basis", ["fourier", "chebyshev"])
def test_grid_update_is_a_no_op_without_a_grid(basis: str) -> None:
    layer = make_layer(basis)
    state = {k: v.clone() for k, v in layer.state_dict().items()}
    layer.update_grid(torch.randn(50, 3, dtype=torch.float64))
    for key, value in layer.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_grid_update_rejects_wrong_input_shape() -> None:
    layer = make_layer("rbf", in_dim=3)
    with pytest.raises(ValueError, match="update_grid expects inputs"):
        layer.update_grid(torch.randn(20, 4, dtype=torch.float64))


@pytest.mark.parametrize("basis", ["rbf", "fourier"])
def test_a_state_with_the_removed_frequencies_buffer_still_loads(basis) -> None:
    # Files written before the unused ``frequencies`` buffer was removed hold it (empty, or the
    # Fourier basis' 0..G); loading drops it, strictly: every other key must still match.
    layer = make_layer(basis)
    assert not any(name.endswith("frequencies") for name in layer.state_dict())
    old = dict(make_layer(basis, seed=1).state_dict())
    old["frequencies"] = torch.arange(7.0) if basis == "fourier" else torch.empty(0)
    layer.load_state_dict(old)
    assert torch.equal(layer.coef, old["coef"])
    del old["coef"]
    with pytest.raises(RuntimeError, match="coef"):
        layer.load_state_dict(old)
