"""The arguments of the KAN operators: one named tuple for a layer's functions, one for its basis.

:meth:`tkam.kan.layer.UnivariateLayer.arguments` and
:meth:`~tkam.kan.layer.UnivariateLayer.basis_arguments` build them; the eager code
(:mod:`tkam.kan.eager`), the fused CPU kernels (:mod:`tkam.kan.native_calls`) and the Triton
kernels (:mod:`tkam.kan.triton_kernels`) take them whole. The PyTorch operators
(:mod:`tkam.kan.operators`) take their fields one by one, in this order: :func:`schema` writes that
part of the operator schemas from the fields' annotations.
"""

from __future__ import annotations

from typing import NamedTuple, cast

from torch import Tensor

__all__ = ["KANArgs", "BasisArgs", "schema", "split"]


class BasisArgs(NamedTuple):
    """What the basis values ``B_m(x)`` of a layer depend on.

    Attributes:
        grid: ``(I, K)`` grid (RBF, RSWAF) or extended knot rows (B-spline); ``(I, 0)`` otherwise.
        tau: the basis temperature (0-d).
        bandwidth: the RBF bandwidth h (0-d).
        basis: the basis name (a key of :data:`tkam.kan.codes.BASIS_CODES`).
        degree: the B-spline degree k, or D of the Chebyshev basis (0 for the others).
        num_bases: M, basis functions per input.
    """

    grid: Tensor
    tau: Tensor
    bandwidth: Tensor
    basis: str
    degree: int
    num_bases: int


class KANArgs(NamedTuple):
    """A layer's functions ``phi_{i->o}(x) = w_spline[i, o] sum_m coef[i, o, m] B_m(x) +
    w_base[i, o] b(x)``: parameters first, then the grid state, then the static choices.

    Attributes:
        coef: ``(I, O, M)`` coefficients.
        w_spline: ``(I, O)`` spline scales, or ``None`` (Chebyshev, or the spline part alone).
        w_base: ``(I, O)`` base weights, or ``None`` (no base branch).
        grid, tau, bandwidth, basis, degree: as in :class:`BasisArgs`.
        activation: the base activation b (a key of :data:`tkam.kan.codes.ACTIVATION_CODES`);
            ``"none"`` switches the base branch off whatever ``w_base`` is.
    """

    coef: Tensor
    w_spline: Tensor | None
    w_base: Tensor | None
    grid: Tensor
    tau: Tensor
    bandwidth: Tensor
    basis: str
    degree: int
    activation: str

    @property
    def num_bases(self) -> int:
        """M, basis functions per input."""
        return self.coef.shape[-1]

    def basis_args(self) -> BasisArgs:
        """The part the basis values depend on."""
        return BasisArgs(
            self.grid, self.tau, self.bandwidth, self.basis, self.degree, self.num_bases
        )

    def base(self) -> Tensor | None:
        """``w_base`` where the base branch is on (an activation other than ``none``)."""
        return self.w_base if self.activation != "none" else None


# Annotation (as written above) -> operator schema type.
_SCHEMA_TYPES = {"Tensor": "Tensor", "Tensor | None": "Tensor?", "str": "str", "int": "int"}


def _annotations(fields: type[NamedTuple]) -> dict[str, str]:
    # NamedTuple keeps postponed annotations as ForwardRef objects.
    return {
        name: cast(str, getattr(annotation, "__forward_arg__", annotation))
        for name, annotation in fields.__annotations__.items()
    }


def schema(fields: type[NamedTuple]) -> str:
    """The fields of ``fields`` as a fragment of an operator schema, ``"Tensor coef, Tensor?
    w_spline, ..."``."""
    return ", ".join(f"{_SCHEMA_TYPES[a]} {name}" for name, a in _annotations(fields).items())


def split(fields: type[NamedTuple], values) -> tuple[tuple, tuple]:
    """``values`` of the fields of ``fields`` as the tensors (the leading fields; ``None``
    included) and the static choices after them."""
    n = sum(a.startswith("Tensor") for a in _annotations(fields).values())
    return tuple(values[:n]), tuple(values[n:])
