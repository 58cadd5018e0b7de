"""Temperature schedules, tempered targets, replica exchange and thermodynamic integration
(maths 4.3, departures A4, A6, A7).

Thermodynamic integration is checked on a conjugate linear-Gaussian model, whose power posteriors
are Gaussian in closed form and whose log-evidence is exact. Each statistical test states its seed
and tolerance.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from tkam.posterior import (
    ULA,
    AutoMALA,
    TemperedTarget,
    automala,
    init_state,
    power_schedule,
    replica_exchange,
    swap_index,
    temperatures,
    tempered_init,
    tempered_langevin,
    tempered_ula_step,
    thermodynamic_integral,
    ula,
)

pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------------------------------------
# schedules


def test_temperatures_are_a_monotone_grid_from_zero_to_one() -> None:
    for num_temps, power in ((1, 1.0), (5, 1.0), (5, 8.0), (10, 0.5), (32, 4.0)):
        t = temperatures(num_temps, power, dtype=torch.float64)
        assert t.shape == (num_temps + 1,)
        assert t[0] == 0.0 and t[-1] == 1.0
        assert (t.diff() > 0).all()
        k = torch.arange(num_temps + 1, dtype=torch.float64)
        torch.testing.assert_close(t, (k / num_temps) ** power)
    # The spec's example (HEAD SVHN, N_t = 5): p = 1 and p = 8.
    torch.testing.assert_close(
        temperatures(5, 1.0, dtype=torch.float64)[1:],
        torch.tensor([0.2, 0.4, 0.6, 0.8, 1.0], dtype=torch.float64),
    )
    expected = torch.tensor([2.56e-6, 6.55e-4, 0.0168, 0.168, 1.0], dtype=torch.float64)
    torch.testing.assert_close(
        temperatures(5, 8.0, dtype=torch.float64)[1:], expected, rtol=0.01, atol=0
    )
    assert temperatures(3, 2.0).dtype == torch.get_default_dtype()
    with pytest.raises(ValueError):
        temperatures(0, 1.0)
    with pytest.raises(ValueError):
        temperatures(4, 0.0)


def test_power_schedule_half_cosine_and_cycles() -> None:
    total, p_start, p_end = 100, 10.0, 1.0
    assert power_schedule(1, total, p_start, p_end, 0) == p_start
    # c = 0: the formula reaches p_end at i = T + 1 and is halfway at the middle of the run.
    assert power_schedule(total + 1, total, p_start, p_end, 0) == pytest.approx(p_end)
    assert power_schedule(total // 2 + 1, total, p_start, p_end, 0) == pytest.approx(5.5)
    quarter = power_schedule(total // 4 + 1, total, p_start, p_end, 0)
    assert quarter == pytest.approx(p_start + (p_end - p_start) * (1 - math.cos(math.pi / 4)) / 2)
    path = [power_schedule(i, total, p_start, p_end, 0) for i in range(1, total + 1)]
    assert all(a > b for a, b in zip(path, path[1:]))  # monotone from p_start towards p_end
    assert all(p_end < p <= p_start for p in path)

    # c = 2 cycles: x runs over [0, 5 pi], so the power falls to p_end (x = pi, 3 pi, 5 pi) and
    # climbs back to p_start (x = 2 pi, 4 pi) twice; it reaches p_end again at i = T + 1.
    cyclic = [power_schedule(i, total, p_start, p_end, 2) for i in range(1, total + 2)]
    assert cyclic[0] == p_start and cyclic[-1] == pytest.approx(p_end)
    assert min(cyclic) == pytest.approx(p_end, abs=0.02) and max(cyclic) == p_start
    turns = sum(1 for a, b, c in zip(cyclic, cyclic[1:], cyclic[2:]) if (b - a) * (c - b) < 0)
    assert turns == 4  # down, up, down, up, down
    assert power_schedule(21, total, p_start, p_end, 2) == pytest.approx(p_end)  # x = pi


# ---------------------------------------------------------------------------------------------
# tempered target and thermodynamic integral


def _target(log_prior, log_lik) -> TemperedTarget:
    """A tempered target whose exchange compares the noise-free log-likelihood."""

    def parts(z: Tensor) -> tuple[Tensor, Tensor]:
        value = log_lik(z)
        return value, value

    return TemperedTarget(log_prior, parts, lambda output, rng: output.detach())


def test_tempered_log_density_is_prior_plus_t_times_likelihood() -> None:
    z = torch.randn(6, 2, 3)
    log_prior = lambda z: -0.5 * z.square().sum(dim=(1, 2))
    log_lik = lambda z: z.sum(dim=(1, 2))
    t = torch.linspace(0, 1, 6)
    f = _target(log_prior, log_lik).log_density(t)
    torch.testing.assert_close(f(z), log_prior(z) + t * log_lik(z))
    # The score of the tempered target, all temperatures in one call.
    torch.testing.assert_close(init_state(z, f).grad, -z + t.view(6, 1, 1))


def test_tempered_ula_step_uses_each_chains_own_temperature(float64) -> None:
    # The cached parts combine as grad_prior + t grad_lik: a ULA step of the parts equals a ULA
    # step of the tempered density with the same noise, for every chain's own t.
    z = torch.randn(5, 3)
    log_prior = lambda z: -0.5 * z.square().sum(-1)
    log_lik = lambda z: -((z - 2.0) ** 2).sum(-1) / 0.3
    t = torch.tensor([0.0, 0.1, 0.5, 0.9, 1.0])
    target = _target(log_prior, log_lik)
    state = tempered_init(z, target)
    torch.testing.assert_close(state.grad_prior, -z)
    torch.testing.assert_close(state.grad_lik, -2 * (z - 2.0) / 0.3)
    moved = tempered_ula_step(state, target, t, 0.01, torch.Generator().manual_seed(3))
    noise = torch.randn(5, 3, generator=torch.Generator().manual_seed(3))
    drift = -z + t.view(-1, 1) * (-2 * (z - 2.0) / 0.3)
    torch.testing.assert_close(moved.z, z + 0.01 * drift + math.sqrt(0.02) * noise)
    torch.testing.assert_close(moved.log_lik, log_lik(moved.z))


def test_swap_index_permutes_population_major_chains() -> None:
    # Three populations of two data points; a certain swap (huge log-likelihood gap in favour)
    # exchanges the chosen pair of populations for both data points and leaves the third alone.
    t = torch.tensor([0.2, 0.5, 1.0])
    log_lik = torch.tensor([100.0, 100.0, 0.0, 0.0, -100.0, -100.0])
    for seed in range(6):
        index, accepted = swap_index(log_lik, t, torch.Generator().manual_seed(seed))
        assert accepted.all()
        pair = 0 if index[0] != 0 else 1  # populations (0, 1) or (1, 2) were proposed
        expected = torch.arange(6).view(3, 2)
        expected[[pair, pair + 1]] = expected[[pair + 1, pair]]
        assert torch.equal(index, expected.reshape(-1))


def test_tempered_langevin_without_exchange_is_plain_ula_and_checks_shapes(float64) -> None:
    log_prior = lambda z: -0.5 * z.square().sum(-1)
    log_lik = lambda z: -z.sum(-1)
    target = _target(log_prior, log_lik)
    z0 = torch.randn(8, 2)
    run = tempered_langevin(
        z0, target, torch.ones(1), torch.Generator().manual_seed(0), sampler=ULA(), steps=3,
        step_size=0.1,
    )  # fmt: skip
    assert run.swap_rate == 0.0 and run.step_size is None and run.z.shape == (8, 2)
    plain = ula(z0, target.log_density(torch.ones(8)), 0.1, 3, torch.Generator().manual_seed(0))
    assert torch.equal(run.z, plain.z)
    with pytest.raises(ValueError, match="populations"):
        tempered_langevin(z0, target, torch.ones(3), None, sampler=ULA(), steps=1, step_size=0.1)


def test_tempered_langevin_with_automala_on_one_population_is_automala(float64) -> None:
    # The sampler argument's autoMALA steps, adapts and returns the step sizes as automala().
    log_prior = lambda z: -0.5 * z.square().sum(-1)
    log_lik = lambda z: -((z - 1.0) ** 2).sum(-1)
    target = _target(log_prior, log_lik)
    z0 = torch.randn(16, 3, generator=torch.Generator().manual_seed(1))
    sampler = AutoMALA(step_size_bounds=(1e-3, 5.0), change_rate=1.5, num_unadjusted=1)
    run = tempered_langevin(
        z0, target, torch.ones(1), torch.Generator().manual_seed(2), sampler=sampler, steps=6,
        step_size=0.3,
    )  # fmt: skip
    direct = automala(
        z0, target.log_density(torch.ones(16)), 0.3, 6, torch.Generator().manual_seed(2),
        step_size_bounds=(1e-3, 5.0), change_rate=1.5, num_unadjusted=1,
    )  # fmt: skip
    assert torch.equal(run.z, direct.z) and torch.equal(run.step_size, direct.step_size)
    assert run.swap_rate == 0.0
    with pytest.raises(ValueError, match="change_rate"):
        AutoMALA(change_rate=1.0)


class _CountingULA(ULA):
    """ULA that records the iterations it stepped and the exchanges it was refreshed after."""

    exchange_from = 2

    def __init__(self) -> None:
        object.__setattr__(self, "log", [])

    def step(self, state, chains, rng, iteration):
        self.log.append(("step", iteration))
        return super().step(state, chains, rng, iteration)

    def refresh(self, state, index, swap_rate, chains):
        self.log.append(("refresh", int(index.numel())))
        return super().refresh(state, index, swap_rate, chains)


def test_tempered_langevin_takes_any_sampler_and_exchanges_when_it_allows(float64) -> None:
    # One loop steps every chain, then (from the sampler's exchange_from on, every
    # exchange_every iterations) exchanges and lets the sampler refresh the moved chains.
    target = _target(lambda z: -0.5 * z.square().sum(-1), lambda z: -z.square().sum(-1))
    sampler = _CountingULA()
    z0 = torch.randn(6, 2, generator=torch.Generator().manual_seed(0))
    temps = torch.tensor([0.5, 1.0])
    run = tempered_langevin(
        z0, target, temps, torch.Generator().manual_seed(1), sampler=sampler, steps=7,
        step_size=0.05, exchange_every=2,
    )  # fmt: skip
    steps = [i for kind, i in sampler.log if kind == "step"]
    refreshes = [i for i, (kind, _) in enumerate(sampler.log) if kind == "refresh"]
    assert steps == list(range(7))
    # Exchanges after iterations 3 and 5 (iteration 1 is before exchange_from), six chains each.
    assert [sampler.log[i - 1] for i in refreshes] == [("step", 3), ("step", 5)]
    assert all(sampler.log[i] == ("refresh", 6) for i in refreshes)
    assert run.z.shape == (6, 2) and run.step_size is None and 0.0 <= run.swap_rate <= 1.0


def test_thermodynamic_integral_rules() -> None:
    t = temperatures(4, 2.0, dtype=torch.float64)  # 0, 1/16, 1/4, 9/16, 1
    expectations = torch.tensor([3.0, -1.0, 2.0, 0.5, 4.0], dtype=torch.float64)
    dt = t.diff()
    reference = dt[0] * expectations[0] + (dt * expectations[1:]).sum()
    trapezoid = (dt * (expectations[:-1] + expectations[1:]) / 2).sum()
    torch.testing.assert_close(thermodynamic_integral(expectations, t), reference)
    torch.testing.assert_close(thermodynamic_integral(expectations, t, "trapezoid"), trapezoid)
    # The reference rule's total weight is 1 + dt_1 (departures A6): it integrates a constant to
    # 1 + dt_1.
    ones = torch.ones(5, dtype=torch.float64)
    assert thermodynamic_integral(ones, t).item() == pytest.approx(1 + 1 / 16)
    assert thermodynamic_integral(ones, t, "trapezoid").item() == pytest.approx(1.0)
    # Trapezoid is exact for linear integrands; trailing dims are integrated independently.
    batch = torch.stack([2 * t + 1, -t], dim=1)  # (5, 2)
    torch.testing.assert_close(
        thermodynamic_integral(batch, t, "trapezoid"),
        torch.tensor([2.0, -0.5], dtype=torch.float64),
    )
    grad_input = expectations.clone().requires_grad_(True)
    thermodynamic_integral(grad_input, t).backward()
    torch.testing.assert_close(grad_input.grad, torch.cat([dt[:1], dt]))
    with pytest.raises(ValueError):
        thermodynamic_integral(expectations, t, "simpson")
    with pytest.raises(ValueError):
        thermodynamic_integral(expectations[1:], t)


MODEL_SEED = 7  # the conjugate model is fixed; each test seeds its sampler separately


class _Conjugate:
    """``z ~ N(0, I_d)``, ``x | z ~ N(A z, s^2 I_D)``; power posteriors in closed form."""

    def __init__(self, d: int, num_obs: int, s: float, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.d, self.num_obs, self.s = d, num_obs, s
        self.A = torch.randn(num_obs, d, generator=g, dtype=torch.float64)
        x = self.A @ torch.randn(d, generator=g, dtype=torch.float64)
        self.x = x + s * torch.randn(num_obs, generator=g, dtype=torch.float64)
        covariance = self.A @ self.A.T + s**2 * torch.eye(num_obs, dtype=torch.float64)
        self.log_evidence = torch.distributions.MultivariateNormal(
            torch.zeros(num_obs, dtype=torch.float64), covariance
        ).log_prob(self.x)

    def log_likelihood(self, z: Tensor) -> Tensor:
        residual = self.x - z @ self.A.T  # (chains, D)
        return -0.5 * residual.square().sum(-1) / self.s**2 - 0.5 * self.num_obs * math.log(
            2 * math.pi * self.s**2
        )

    @staticmethod
    def log_prior(z: Tensor) -> Tensor:
        return -0.5 * z.square().sum(-1) - 0.5 * z.shape[-1] * math.log(2 * math.pi)

    def power_posterior(self, t: float) -> tuple[Tensor, Tensor]:
        """Mean ``(d,)`` and Cholesky factor ``(d, d)`` of ``pi_t``."""
        eye = torch.eye(self.d, dtype=torch.float64)
        covariance = torch.linalg.inv(eye + t * self.A.T @ self.A / self.s**2)
        mean = covariance @ self.A.T @ self.x * t / self.s**2
        return mean, torch.linalg.cholesky(covariance)


@pytest.mark.statistical
def test_thermodynamic_integration_with_exact_power_posterior_samples(float64) -> None:
    """Seed 41 (model seed 7); d = 3, D = 5, s = 1; 50,000 exact samples from each power posterior, built from
    the same standard normals at every temperature (common random numbers: the Monte-Carlo error
    is then one smooth function of t, the same offset for every grid); ``t_k = (k / N_t)^4``.

    * Discretisation: against the same Monte-Carlo integrand on a fine grid (N_t = 256), the
      trapezoid error shrinks at least 3x per doubling of N_t = 4, 8, 16, 32 (order 2: ~4x).
    * Total: the error against the exact log-evidence (-16.10 nats) is within the
      discretisation error plus 4.5 Monte-Carlo SE (SE ~0.02) for every N_t, under 1.4 nats at
      N_t = 4 and under 0.12 at N_t = 32.
    * The reference rule (departures A6) is a right Riemann sum, O(1 / N_t): at N_t = 32 its
      error is over 3x the trapezoid's.
    """
    g = torch.Generator().manual_seed(41)
    model = _Conjugate(d=3, num_obs=5, s=1.0, seed=MODEL_SEED)
    exact = model.log_evidence.item()
    base = torch.randn(50_000, 3, generator=g)

    def integrand(t: Tensor) -> Tensor:
        """``(N_t + 1, n)`` log-likelihoods of the power-posterior samples."""
        values = []
        for t_k in t.tolist():
            mean, cholesky = model.power_posterior(t_k)
            values.append(model.log_likelihood(mean + base @ cholesky.T))  # (n,)
        return torch.stack(values)

    fine_t = temperatures(256, 4.0, dtype=torch.float64)
    fine = thermodynamic_integral(integrand(fine_t).mean(dim=1), fine_t, "trapezoid").item()
    discretisation, total = [], []
    for num_temps in (4, 8, 16, 32):
        t = temperatures(num_temps, 4.0, dtype=torch.float64)
        values = integrand(t)
        estimate = thermodynamic_integral(values.mean(dim=1), t, "trapezoid").item()
        per_sample = thermodynamic_integral(values, t, "trapezoid")  # (n,)
        standard_error = per_sample.std().item() / math.sqrt(per_sample.numel())
        assert standard_error < 0.05
        discretisation.append(abs(estimate - fine))
        total.append(abs(estimate - exact))
        assert total[-1] < discretisation[-1] + 4.5 * standard_error
        if num_temps == 32:
            reference = thermodynamic_integral(values.mean(dim=1), t, "reference").item()
            assert abs(reference - exact) > 3 * total[-1]
    assert all(a > 3 * b for a, b in zip(discretisation, discretisation[1:])), discretisation
    assert total[0] < 1.4 and total[-1] < 0.12


@pytest.mark.statistical
@pytest.mark.parametrize("sampler", [ULA(), AutoMALA()], ids=["ula", "automala"])
def test_thermodynamic_integration_with_tempered_chains(float64, sampler) -> None:
    """The same integral from :func:`tempered_langevin` (ULA, and autoMALA from a starting step
    of 0.01): all N_t = 16 populations (p = 4) of 500 chains move in one batched call on
    ``log_prior + t log_lik`` with a per-chain ``t``, from prior draws, 300 steps, with a
    replica-exchange attempt after every step; E_0 from 20,000 prior draws.
    Seed 42 (model seed 7); within 0.3 nats of the exact log-evidence (the trapezoid
    discretisation error at N_t = 16 is 0.08; ULA's O(h) bias and the Monte-Carlo error make up
    the rest: errors of 0.03-0.15 over four seeds)."""
    g = torch.Generator().manual_seed(42)
    model = _Conjugate(d=3, num_obs=5, s=1.0, seed=MODEL_SEED)
    num_temps, batch = 16, 500
    t = temperatures(num_temps, 4.0, dtype=torch.float64)
    z0 = torch.randn(num_temps * batch, 3, generator=g)
    target = _target(model.log_prior, model.log_likelihood)
    run = tempered_langevin(z0, target, t[1:], g, sampler=sampler, steps=300, step_size=0.01)
    state = run
    expectations = model.log_likelihood(state.z).view(num_temps, batch).mean(dim=1)
    prior_expectation = model.log_likelihood(torch.randn(20_000, 3, generator=g)).mean()
    estimate = thermodynamic_integral(
        torch.cat([prior_expectation.view(1), expectations]), t, "trapezoid"
    )
    assert abs(estimate.item() - model.log_evidence.item()) < 0.3
    assert 0.3 < run.swap_rate < 1.0


# ---------------------------------------------------------------------------------------------
# replica exchange


def _labelled_populations(num_temps: int, batch: int) -> Tensor:
    """``z[k, b] = (k, b)`` as an event of shape (2, 1), so swaps can be traced exactly."""
    k = torch.arange(num_temps, dtype=torch.float64).view(-1, 1).expand(num_temps, batch)
    b = torch.arange(batch, dtype=torch.float64).view(1, -1).expand(num_temps, batch)
    return torch.stack([k, b], dim=-1).unsqueeze(-1)  # (K, B, 2, 1)


@pytest.mark.statistical
def test_replica_exchange_per_chain_acceptance_matches_the_metropolis_ratio() -> None:
    """Seed 51; K = 4 populations, B = 2,000 data points with log-likelihoods drawn once, 400
    calls. Per call, the number of swaps equals ``sum_b min(1, exp(dt (l_k - l_{k+1})))`` within
    4.5 binomial SE over all calls pooled; pairs are uniform within 4.5 SE; swaps are exact
    exchanges of the chosen pair and leave the other populations alone."""
    g = torch.Generator().manual_seed(51)
    num_temps, batch, calls = 4, 2000, 400
    t = temperatures(num_temps, 2.0, dtype=torch.float64)[1:]  # populations at t_1..t_4
    log_lik = 3.0 * torch.randn(num_temps, batch, generator=g, dtype=torch.float64)
    z = _labelled_populations(num_temps, batch)
    swaps = expected = variance = 0.0
    pair_counts = torch.zeros(num_temps - 1)
    for _ in range(calls):
        result = replica_exchange(z, log_lik, t, g)
        k = int(result.pair)
        pair_counts[k] += 1
        p = torch.exp(((t[k + 1] - t[k]) * (log_lik[k] - log_lik[k + 1])).clamp(max=0.0))
        swaps += result.accepted.sum().item()
        expected += p.sum().item()
        variance += (p * (1 - p)).sum().item()
        a = result.accepted.view(batch, 1, 1)
        assert torch.equal(result.z[k], torch.where(a, z[k + 1], z[k]))
        assert torch.equal(result.z[k + 1], torch.where(a, z[k], z[k + 1]))
        others = [j for j in range(num_temps) if j not in (k, k + 1)]
        assert torch.equal(result.z[others], z[others])
    assert abs(swaps - expected) < 4.5 * math.sqrt(variance)
    uniform = calls / (num_temps - 1)
    pair_se = math.sqrt(calls * (1 / 3) * (2 / 3))
    assert (pair_counts - uniform).abs().max() < 4.5 * pair_se


@pytest.mark.statistical
def test_replica_exchange_whole_batch_decision() -> None:
    """Seed 52; per_chain=False swaps all data points or none, with probability
    ``min(1, exp(dt (sum_b l_k - sum_b l_{k+1})))``; two populations, so the pair is fixed.
    The ratio is set to log(0.3); 3,000 calls match 0.3 within 4.5 binomial SE."""
    g = torch.Generator().manual_seed(52)
    batch, calls = 50, 3000
    t = torch.tensor([0.25, 0.75], dtype=torch.float64)
    log_lik = torch.randn(2, batch, generator=g, dtype=torch.float64)
    # dt (L_0 - L_1) = log 0.3, with L_k the batch sums; individual data points vary in sign.
    shift = (math.log(0.3) / 0.5 - (log_lik[0].sum() - log_lik[1].sum())) / batch
    log_lik[0] += shift
    z = _labelled_populations(2, batch)
    swapped = 0
    for _ in range(calls):
        result = replica_exchange(z, log_lik, t, g, per_chain=False)
        assert int(result.pair) == 0
        assert result.accepted.all() or not result.accepted.any()
        swapped += int(result.accepted[0])
        if result.accepted[0]:
            assert torch.equal(result.z, z.flip(0))
        else:
            assert torch.equal(result.z, z)
    se = math.sqrt(calls * 0.3 * 0.7)
    assert abs(swapped - 0.3 * calls) < 4.5 * se
    # Per chain on the same input: each data point decides on its own (some swap, some do not).
    per_chain = replica_exchange(z, log_lik, t, g, per_chain=True).accepted
    assert per_chain.any() and not per_chain.all()


def test_replica_exchange_validates_its_inputs() -> None:
    g = torch.Generator().manual_seed(53)
    z, log_lik = torch.zeros(3, 4, 2), torch.zeros(3, 4)
    with pytest.raises(ValueError, match=r"temperatures\(N, p\)\[1:\]"):
        replica_exchange(z, log_lik, temperatures(3, 1.0), g)
    with pytest.raises(ValueError, match="num_temps, batch"):
        replica_exchange(z[:, :3], log_lik, temperatures(3, 1.0)[1:], g)
    with pytest.raises(ValueError, match="two populations"):
        replica_exchange(z[:1], log_lik[:1], torch.ones(1), g)
    # Equal log-likelihoods: the ratio is 0, so every swap is accepted (log u < 0 a.s.).
    assert replica_exchange(z, log_lik, temperatures(3, 1.0)[1:], g).accepted.all()
