"""The univariate Kolmogorov-Arnold prior (maths 1.1-1.2, 3.4-3.5).

P uniforms ``u_p`` drive ``Q x P`` learned univariate densities: ``z_qp = F_qp^{-1}(u_p)``, one
uniform shared by every q (departures A25 keeps this by default). With
``prior.independent_uniforms`` each component draws its own, ``z_qp = F_qp^{-1}(u_qp)``, so the
sampled law is the product of the marginals that the log-prior assumes. The generator receives
``h_q = sum_p z_qp``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from tkam.config import PriorConfig
from tkam.prior.base import KANPrior
from tkam.prior.inverse_transform import invert_batched, invert_components, invert_shared
from tkam.prior.quadrature import QuadratureTable, log_plus

_INV_SQRT_2PI = 0.3989422804014327


def _below_one(dtype: torch.dtype) -> float:
    # Phi(e) in [0, 1): the largest float below 1 keeps u = 1 out of the last interval's end.
    return 1.0 - torch.finfo(dtype).eps


class _InverseTransform(torch.autograd.Function):
    """``z = F^{-1}(Phi(e))`` for noise ``(S, Q, P)`` with one component per entry, given
    ``invert: u -> (z, dz/du)``; the backward is ``dz/du * phi(e)`` (0 where ``Phi(e)`` is
    clamped below 1), from the slopes the inversion returned."""

    @staticmethod
    def forward(ctx, noise: Tensor, invert: Callable[[Tensor], tuple[Tensor, Tensor]]) -> Tensor:
        top = _below_one(noise.dtype)
        u = torch.special.ndtr(noise)
        z, slope = invert(u.clamp(max=top))
        density = torch.exp(-0.5 * noise.square()) * _INV_SQRT_2PI
        ctx.save_for_backward(torch.where(u <= top, slope * density, 0.0))
        return z

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        (derivative,) = ctx.saved_tensors
        return grad * derivative, None


__all__ = ["UnivariatePrior"]


class UnivariatePrior(KANPrior):
    """``f_qp = phi_{p->q}``: a layer with P inputs (grid row p) and Q outputs.

    The components are taken from the layer by an explicit transpose. With
    ``config.compat_layout`` they follow the reference code instead (departures A2): its
    column-major ``(P, Q)`` layer output is reshaped to ``(Q, P)``, so component (q, p) is the
    function ``phi_{p'->q'}`` at linear index ``l = q + Q p`` (``p' = l mod P``,
    ``q' = l div P``) on the nodes of row p', the log-prior's term (q, p) evaluates that function
    at ``z_{q, p'}``, and a grid update refits row p on the latents reshaped the same way.
    """

    rows_are_inputs = True
    # Buffers of the reference layout (``compat_layout`` only).
    _slot_source: Tensor
    _energy_rows: Tensor
    _grid_source: Tensor

    def __init__(
        self, config: PriorConfig, eps: float = 1e-4, rng: torch.Generator | None = None
    ) -> None:
        super().__init__(config, config.num_inputs, config.num_outputs, eps, rng)
        self.compat_layout = config.compat_layout
        self.fused_quadrature = not self.compat_layout
        if self.compat_layout:
            Q, P = self.num_outputs, self.num_inputs
            q = torch.arange(Q).unsqueeze(1)
            p = torch.arange(P).unsqueeze(0)
            slot = q + Q * p  # (Q, P): column-major linear index of component (q, p)
            # Component (q, p) is phi_{p'->q'}: its place p' Q + q' in the (N, P, Q) layer output.
            self.register_buffer("_slot_source", (slot % P) * Q + slot // P, persistent=False)
            function = p + P * q  # (Q, P): column-major index of phi_{p->q} in the (P, Q) output
            # phi_{p->q} is evaluated at z[(p + P q) mod Q, p] (the log-prior's outer loop).
            self.register_buffer("_energy_rows", function % Q, persistent=False)
            # Grid row p is refit on z flat-indexed (l mod Q) P + l div Q with l = p + P q.
            self.register_buffer(
                "_grid_source", (function % Q) * P + function // Q, persistent=False
            )

    def _components(self, values: Tensor) -> Tensor:
        if self.compat_layout:  # (N, P, Q) -> (N, P Q) -> (N, Q, P) by the reshaped layout
            values = values.reshape(values.shape[0], -1)[:, self._slot_source]
            return values.permute(1, 2, 0)
        return values.permute(2, 1, 0)  # (N, P, Q) -> (Q, P, N)

    def _energy_inputs(self, z: Tensor) -> Tensor:
        """The ``(S, Q, P)`` points at which ``phi_{p->q}`` enters the log-prior."""
        if not self.compat_layout:
            return z
        return torch.gather(z, 1, self._energy_rows.expand(z.shape[0], -1, -1))

    @property
    def latent_shape(self) -> tuple[int, int]:
        return (self.num_outputs, self.num_inputs)

    @torch.no_grad()
    def sample(self, num_samples: int, rng: torch.Generator | None = None) -> Tensor:
        """``(S, Q, P)`` exact samples; column p of every q comes from the same uniform, or,
        with ``independent_uniforms``, every component from its own."""
        table = self.sampling_table()
        if self.config.independent_uniforms:
            return self._sample_independent(table, num_samples, rng)
        u = self._uniform((self.num_inputs, num_samples), rng)
        by_row = self._by_row(table)
        return invert_shared(
            table.knots[0], table.cdf, u, cdf_by_row=by_row, kernel=self.layer.kernel
        )

    @torch.no_grad()
    def sample_generator_input(
        self, num_samples: int, rng: torch.Generator | None = None
    ) -> Tensor:
        """``h (S, Q)`` of ``num_samples`` exact samples without storing the latents: the same
        draws as ``generator_input(sample(...))``, summed over p as they are inverted."""
        table = self.sampling_table()
        if self.config.independent_uniforms:
            return self._sample_independent(table, num_samples, rng).sum(dim=-1)
        u = self._uniform((self.num_inputs, num_samples), rng)
        by_row = self._by_row(table)
        kernel = self.layer.kernel
        return invert_shared(table.knots[0], table.cdf, u, False, True, by_row, kernel=kernel)[1]

    def _sample_independent(
        self, table: QuadratureTable, num_samples: int, rng: torch.Generator | None
    ) -> Tensor:
        """``(S, Q, P)`` samples, one uniform per sample and component: each component's CDF
        inverted at its own uniforms (row ``q P + p`` of the flattened table, the knots of row
        p), by the fused kernel on CPU float32."""
        u = self._uniform((num_samples, self.num_outputs, self.num_inputs), rng)
        knots, cdf, component, guide, knot_rows = self._independent_rows(table, num_samples)
        return invert_components(
            knots, cdf, component, u, guide, knot_rows, kernel=self.layer.kernel
        )

    def _independent_rows(self, table: QuadratureTable, num_samples: int) -> tuple[Tensor, ...]:
        """:func:`invert_components`'s tables for ``(S, Q, P)`` uniforms, one per sample and
        component: the knots, the flattened CDFs (row ``q P + p``), each entry's row, the guide
        and each entry's knot row (row p)."""
        Q, P = self.num_outputs, self.num_inputs
        n = table.cdf.shape[-1]
        device = table.cdf.device
        shape = (num_samples, Q, P)
        component = torch.arange(Q * P, device=device).reshape(Q, P).expand(shape)
        knot_rows = torch.arange(P, device=device).expand(shape)
        cdf = table.cdf.reshape(Q * P, n)
        return table.knots[0], cdf, component, self.sampling_guide(), knot_rows

    @property
    def noise_shape(self) -> tuple[int, ...]:
        """Shape of the noise behind one sample: ``(P,)`` shared uniforms, or ``(Q, P)`` with
        ``independent_uniforms`` (:meth:`latents_from_noise`)."""
        if self.config.independent_uniforms:
            return (self.num_outputs, self.num_inputs)
        return (self.num_inputs,)

    def latents_from_noise(self, noise: Tensor) -> Tensor:
        """``z = F^{-1}(Phi(e))``: standard normal noise ``(S, *noise_shape)`` through the normal
        CDF and the components' inverse CDFs, ``(S, Q, P)``, differentiable in ``noise`` (the
        slope of the piecewise-linear CDF's inverse times the normal density). With ``e`` drawn
        from ``N(0, I)`` these are exact prior samples, the law :meth:`sample` draws."""
        if tuple(noise.shape[1:]) != self.noise_shape:
            raise ValueError(
                f"noise: expected shape (S, {', '.join(map(str, self.noise_shape))}), got"
                f" {tuple(noise.shape)}"
            )
        table = self.sampling_table()
        Q, P = self.num_outputs, self.num_inputs
        cdf = table.cdf  # (Q, P, n)
        noise = noise.to(cdf.dtype)
        if self.config.independent_uniforms:
            # The inversion returns its slope, so the backward needs no second search.
            knots, cdf, component, guide, knot_rows = self._independent_rows(table, len(noise))

            def invert(u: Tensor) -> tuple[Tensor, Tensor]:
                kernel = self.layer.kernel
                return invert_components(
                    knots, cdf, component, u, guide, knot_rows, kernel=kernel, slope=True
                )

            return _InverseTransform.apply(noise, invert)
        u = torch.special.ndtr(noise).clamp(max=_below_one(cdf.dtype))
        u = u.t().expand(Q, P, noise.shape[0])  # (P, S) shared by every q
        z = invert_batched(table.knots[0].expand_as(cdf), cdf, u)  # (Q, P, S)
        return z.permute(2, 0, 1)

    def _by_row(self, table: QuadratureTable) -> Tensor:
        # Written by the fused quadrature; otherwise laid out once per table.
        if table.cdf_by_row is not None:
            return table.cdf_by_row
        return self.sampling_cdf_by_row()

    def log_prior(
        self, z: Tensor, normalise: bool = False, log_normaliser: Tensor | None = None
    ) -> Tensor:
        """``sum_qp f_qp(z_qp) + log(pi_0(z_qp) + eps) [- log(Z_qp + eps)]``, ``(S, Q, P) -> (S,)``.

        With ``normalise``, ``log_normaliser`` (``(Q, P)``, from :meth:`log_normaliser`) saves
        recomputing the quadrature when the caller already holds it.
        """
        value = self.layer.pairwise(self._energy_inputs(z)) + self.reference.log_density(z)
        total = value.sum(dim=(1, 2))
        if normalise:
            log_z = self.log_normaliser() if log_normaliser is None else log_normaliser
            total = total - log_plus(log_z, self.eps).sum()
        return total

    def weighted_log_prior(
        self,
        z: Tensor,
        weights: Tensor,
        normalise: bool = False,
        log_normaliser: Tensor | None = None,
    ) -> Tensor:
        """``sum_s weights[s] log p(z_s)``, a 0-d tensor (``normalise`` and ``log_normaliser`` as
        for :meth:`log_prior`). With constant latents and weights (the training losses' prior
        terms) the fused kernel gives the energies' weighted sum and its parameter gradients in
        one pass over the bases; ``log Z`` does not depend on the latents and adds once."""
        energy = self.layer.weighted_pairwise(self._energy_inputs(z), weights)
        total = energy + (self.reference.log_density(z).sum(dim=(1, 2)) * weights).sum()
        if normalise:
            log_z = self.log_normaliser() if log_normaliser is None else log_normaliser
            total = total - weights.sum() * log_plus(log_z, self.eps).sum()
        return total

    def generator_input(self, z: Tensor) -> Tensor:
        return z.sum(dim=-1)

    def grid_inputs(self, z: Tensor) -> Tensor:
        # Row p is refit on all values {z_qp} over q and samples.
        if self.compat_layout:
            z = z.reshape(z.shape[0], -1)[:, self._grid_source]
        return z.reshape(-1, self.num_inputs)
