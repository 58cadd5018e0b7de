"""Resamplers: shapes, ranges, exact count bounds and unbiasedness (design 7)."""

from __future__ import annotations

from typing import NamedTuple

import pytest
import torch

from tkam.posterior import RESAMPLERS, multinomial, resample, residual, stratified, systematic

NAMES = sorted(RESAMPLERS)
REPETITIONS = 20_000
# Per-index two-sided z bound. With 8-12 indices per check and ~10 checks, a bound of 4.5
# (p ~ 7e-6 per index) keeps the family-wise false-alarm rate below 1e-3 for any seed.
Z_BOUND = 4.5

# N = 8 weights with a zero, an integer N w (index 4: N w = 1) and fractional parts of all sizes.
WEIGHTS = torch.tensor([0.31, 0.02, 0.0, 0.17, 0.125, 0.255, 0.05, 0.07], dtype=torch.float64)


def _dirichlet(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    e = -torch.log(1.0 - torch.rand(n, generator=g, dtype=torch.float64))
    return e / e.sum()


class CheckResult(NamedTuple):
    passed: bool
    max_z: float


def counts(indices: torch.Tensor, n: int) -> torch.Tensor:
    """``(R, N)`` float64 number of times each index appears in each row."""
    out = torch.zeros(indices.shape[0], n, dtype=torch.float64)
    return out.scatter_add_(1, indices, torch.ones_like(indices, dtype=torch.float64))


def unbiasedness_check(
    indices: torch.Tensor, expected: torch.Tensor, z_bound: float = Z_BOUND
) -> CheckResult:
    """Test that the mean count of every index over the rows equals ``expected``.

    Rows are independent repetitions with the same weights. The z-score of index ``i`` is
    ``(mean_count_i - expected_i) / sqrt(var_i / R)`` with the empirical count variance, valid for
    every resampler (their count variances differ). An index whose count never varies (systematic
    with integer ``N w_i``) must match exactly, up to round-off.

    Args:
        indices: ``(R, N)`` resampled indices, one repetition per row.
        expected: ``(N,)`` expected count of each index.
        z_bound: largest acceptable ``|z|``.

    Returns:
        whether every index passed, and the largest ``|z|`` (inf for a constant count that is off).
    """
    c = counts(indices, expected.shape[0])
    repetitions = c.shape[0]
    error = c.mean(dim=0) - expected
    variance = c.var(dim=0)
    constant = variance == 0
    if bool((constant & (error.abs() > 1e-9)).any()):
        return CheckResult(False, float("inf"))
    z = torch.where(constant, 0.0, error / torch.sqrt(variance / repetitions).clamp_min(1e-300))
    max_z = float(z.abs().max())
    return CheckResult(max_z < z_bound, max_z)


def _batch(weights: torch.Tensor, repetitions: int = REPETITIONS) -> torch.Tensor:
    return weights.expand(repetitions, -1)


@pytest.mark.parametrize("name", NAMES)
def test_shape_dtype_and_range(name: str) -> None:
    g = torch.Generator().manual_seed(0)
    weights = torch.softmax(3.0 * torch.randn(5, 13, generator=g), dim=-1)  # float32
    weights[1] = 0.0
    weights[1, 12] = 1.0  # one-hot on the last index
    weights[2, :6] = 0.0  # zeros at the start of the row
    indices = resample(name, weights, g)
    assert indices.shape == (5, 13)
    assert indices.dtype == torch.long
    assert int(indices.min()) >= 0 and int(indices.max()) < 13
    assert torch.all(indices[1] == 12)
    assert torch.all(indices[2] >= 6)


@pytest.mark.parametrize("name", NAMES)
def test_zero_weight_is_never_drawn(name: str) -> None:
    g = torch.Generator().manual_seed(1)
    weights = _batch(torch.tensor([0.0, 0.5, 0.0, 0.0, 0.5, 0.0]), 2_000)
    indices = resample(name, weights, g)
    assert set(indices.unique().tolist()) <= {1, 4}


@pytest.mark.parametrize("name", NAMES)
def test_large_float32_rows_stay_in_range(name: str) -> None:
    # float32 softmax over 100k particles does not sum to exactly one; no index may leave [0, N).
    g = torch.Generator().manual_seed(2)
    n = 100_000
    weights = torch.softmax(5.0 * torch.randn(2, n, generator=g), dim=-1)
    indices = resample(name, weights, g)
    assert int(indices.min()) >= 0 and int(indices.max()) < n


@pytest.mark.parametrize("name", NAMES)
def test_unnormalised_weights_are_normalised(name: str) -> None:
    weights = _dirichlet(9, seed=3).expand(4, -1)
    a = resample(name, weights, torch.Generator().manual_seed(4))
    b = resample(name, 7.5 * weights, torch.Generator().manual_seed(4))
    assert torch.equal(a, b)


@pytest.mark.parametrize("name", NAMES)
def test_reproducible_with_generator(name: str) -> None:
    weights = _batch(_dirichlet(10, seed=5), 50)
    a = resample(name, weights, torch.Generator().manual_seed(6))
    b = resample(name, weights, torch.Generator().manual_seed(6))
    c = resample(name, weights, torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.statistical
@pytest.mark.parametrize("name", NAMES)
def test_unbiased_mean_counts(name: str) -> None:
    """Seed 10, 20,000 repetitions per weight vector, |z| < 4.5 for every index.

    Two weight vectors are interleaved in one batch so that the rows are also shown to be
    resampled independently of each other.
    """
    other = _dirichlet(12, seed=11)
    n = 12
    first = torch.cat([WEIGHTS, torch.zeros(n - WEIGHTS.shape[0], dtype=torch.float64)])
    weights = torch.stack([first, other]).repeat(REPETITIONS, 1)  # (2R, N), rows alternate
    indices = resample(name, weights, torch.Generator().manual_seed(10))
    for row, w in ((0, first), (1, other)):
        result = unbiasedness_check(indices[row::2], n * w)
        assert result.passed, f"{name}: max |z| = {result.max_z:.2f} for weights {row}"


def test_systematic_counts_are_floor_or_ceil() -> None:
    n = WEIGHTS.shape[0]
    c = counts(systematic(_batch(WEIGHTS, 5_000), torch.Generator().manual_seed(12)), n)
    assert torch.all((c - n * WEIGHTS).abs() < 1.0 + 1e-9)
    assert torch.all(c[:, 4] == 1.0)  # N w_4 = 1 exactly: one copy, always


def test_stratified_counts_within_two() -> None:
    # Index i's interval of length w_i covers floor(N w_i) - 1 .. ceil(N w_i) + 1 strata points.
    w = _dirichlet(12, seed=13)
    n = w.shape[0]
    c = counts(stratified(_batch(w, 5_000), torch.Generator().manual_seed(14)), n)
    assert torch.all((c - n * w).abs() < 2.0)


def test_residual_deterministic_copies() -> None:
    w = _dirichlet(12, seed=15)
    n = w.shape[0]
    floor = torch.floor(n * w)
    c = counts(residual(_batch(w, 5_000), torch.Generator().manual_seed(16)), n)
    assert torch.all(c >= floor)
    assert torch.all(c <= floor + (n - floor.sum()))
    # The deterministic copies come first, in ascending index order.
    indices = residual(w[None], torch.Generator().manual_seed(17))[0]
    k = int(floor.sum())
    expected = torch.repeat_interleave(torch.arange(n), floor.long())
    assert torch.equal(indices[:k], expected)


def test_residual_with_integer_counts_is_deterministic() -> None:
    w = torch.tensor([0.25, 0.0, 0.5, 0.25], dtype=torch.float64)  # N w = 1, 0, 2, 1
    indices = residual(_batch(w, 100), torch.Generator().manual_seed(18))
    assert torch.equal(indices, torch.tensor([0, 2, 2, 3]).expand(100, -1))


@pytest.mark.statistical
def test_residual_compat_matches_reference_formula() -> None:
    """Seed 19, 20,000 repetitions, |z| < 4.5: compat draws the remainder from
    softmax(w (N - k)) (departures A8), which is biased, and the check sees the bias."""
    n = WEIGHTS.shape[0]
    floor = torch.floor(n * WEIGHTS)
    reference = torch.softmax(WEIGHTS * (n - floor), dim=-1)
    expected = floor + (n - floor.sum()) * reference
    indices = resample("residual", _batch(WEIGHTS), torch.Generator().manual_seed(19), compat=True)
    assert unbiasedness_check(indices, expected).passed
    assert not unbiasedness_check(indices, n * WEIGHTS).passed


def _biased_towards_zero(weights: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Multinomial, except that each slot is replaced by index 0 with probability 5%."""
    indices = multinomial(weights, generator)
    flip = torch.rand(indices.shape, generator=generator) < 0.05
    return torch.where(flip, torch.zeros_like(indices), indices)


def _off_by_one_systematic(weights: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Systematic with the classic bug of taking the interval to the right of the uniform."""
    return (systematic(weights, generator) + 1).clamp(max=weights.shape[-1] - 1)


@pytest.mark.statistical
@pytest.mark.parametrize("wrong", [_biased_towards_zero, _off_by_one_systematic])
def test_check_detects_biased_resampler(wrong) -> None:
    """Seed 20: the unbiasedness check has power against plausible bugs."""
    n = WEIGHTS.shape[0]
    indices = wrong(_batch(WEIGHTS), torch.Generator().manual_seed(20))
    result = unbiasedness_check(indices, n * WEIGHTS)
    assert not result.passed
    assert result.max_z > 2 * Z_BOUND


def test_unknown_resampler_lists_choices() -> None:
    with pytest.raises(ValueError, match="multinomial, residual, stratified, systematic"):
        resample("sytematic", _batch(WEIGHTS, 2), torch.Generator())


def test_registry_holds_the_plain_functions() -> None:
    assert RESAMPLERS == {
        "systematic": systematic,
        "stratified": stratified,
        "multinomial": multinomial,
        "residual": residual,
    }


def test_rejects_non_matrix_weights() -> None:
    with pytest.raises(ValueError, match=r"\(B, N\)"):
        systematic(WEIGHTS, torch.Generator())
