"""Darcy field statistics."""

from __future__ import annotations

import pytest
import torch

from tkam.metrics import darcy_field_errors, radial_power_spectrum


def test_radial_spectrum_of_white_noise_is_flat():
    fields = torch.randn(400, 32, 32, generator=torch.Generator().manual_seed(0))
    spectrum = radial_power_spectrum(fields)
    assert spectrum.shape == (17,)
    assert torch.allclose(spectrum[1:], torch.ones(16, dtype=torch.float64), atol=0.1)


def test_errors_are_small_for_the_same_distribution_and_large_otherwise():
    gen = torch.Generator().manual_seed(1)
    base = torch.linspace(0, 1, 16).repeat(16, 1)
    a = base + 0.1 * torch.randn(2000, 1, 16, 16, generator=gen)
    b = base + 0.1 * torch.randn(2000, 1, 16, 16, generator=gen)
    c = 0.5 * base + 0.3 * torch.randn(2000, 1, 16, 16, generator=gen)
    same, different = darcy_field_errors(a, b), darcy_field_errors(c, b)
    for key, value in same.items():
        assert value < 0.1, key
        assert different[key] > 0.4, key
    assert different["darcy_variance_error"] == pytest.approx(8.0, rel=0.1)  # 0.09/0.01 - 1
