"""Darcy flow statistics: generated against held-out fields (mean, variance, power spectrum)."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["darcy_field_errors", "radial_power_spectrum", "relative_l2_error"]


def relative_l2_error(estimate: Tensor, reference: Tensor) -> float:
    """``||estimate - reference|| / ||reference||``."""
    estimate, reference = estimate.double(), reference.double()
    return float((estimate - reference).norm() / reference.norm().clamp_min(1e-300))


def radial_power_spectrum(fields: Tensor) -> Tensor:
    """Mean radially binned power spectrum of fields ``(N, H, W)`` (or ``(N, 1, H, W)``).

    ``|FFT|^2 / (H W)`` of each field, averaged over the fields and over the frequencies with
    ``round(|k|) = r`` for integer wavenumbers ``r = 0, 1, ..., floor(min(H, W) / 2)``.

    Returns:
        ``(R,)`` float64 spectrum, ``R = min(H, W) // 2 + 1``.
    """
    if fields.dim() == 4:
        fields = fields.flatten(1, 2) if fields.shape[1] == 1 else fields
    if fields.dim() != 3:
        raise ValueError(f"fields must be (N, H, W) or (N, 1, H, W), got {tuple(fields.shape)}")
    height, width = fields.shape[-2:]
    power = torch.fft.fft2(fields.double()).abs().square().mean(dim=0) / (height * width)  # (H, W)
    ky = torch.fft.fftfreq(height, 1.0 / height, dtype=torch.float64)
    kx = torch.fft.fftfreq(width, 1.0 / width, dtype=torch.float64)
    radius = torch.sqrt(ky[:, None] ** 2 + kx[None, :] ** 2).round().long()  # (H, W)
    bins = min(height, width) // 2 + 1
    keep = radius < bins
    sums = torch.zeros(bins, dtype=torch.float64).index_add_(0, radius[keep], power[keep])
    counts = torch.zeros(bins, dtype=torch.float64).index_add_(
        0, radius[keep], torch.ones_like(power[keep])
    )
    return sums / counts


def darcy_field_errors(generated: Tensor, held_out: Tensor) -> dict[str, float]:
    """Relative L2 errors of generated Darcy fields against held-out ones.

    Args:
        generated: ``(N, 1, H, W)`` or ``(N, H, W)`` generated fields.
        held_out: ``(M, ...)`` held-out fields of the same size.

    Returns:
        ``darcy_mean_field_error`` (pointwise mean field), ``darcy_variance_error`` (pointwise
        variance) and ``darcy_power_spectrum_error`` (radial power spectrum of the fluctuations
        about each set's mean field, i.e. without the mean's contribution).
    """
    g, h = generated.double().reshape(generated.shape[0], *generated.shape[-2:]), held_out.double()
    h = h.reshape(h.shape[0], *h.shape[-2:])
    g_mean, h_mean = g.mean(dim=0), h.mean(dim=0)
    return {
        "darcy_mean_field_error": relative_l2_error(g_mean, h_mean),
        "darcy_variance_error": relative_l2_error(g.var(dim=0), h.var(dim=0)),
        "darcy_power_spectrum_error": relative_l2_error(
            radial_power_spectrum(g - g_mean), radial_power_spectrum(h - h_mean)
        ),
    }
