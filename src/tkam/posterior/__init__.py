"""Posterior machinery that sees only log-densities and log-likelihood matrices.

Nothing here knows about KANs or priors (DESIGN.md section 2).
"""

from __future__ import annotations

from tkam.posterior.importance import (
    SIRResult,
    importance_resample,
    importance_weights,
    log_evidence,
)
from tkam.posterior.resampling import (
    RESAMPLERS,
    Resampler,
    multinomial,
    resample,
    residual,
    stratified,
    systematic,
)

__all__ = [
    "RESAMPLERS",
    "Resampler",
    "SIRResult",
    "importance_resample",
    "importance_weights",
    "log_evidence",
    "multinomial",
    "resample",
    "residual",
    "stratified",
    "systematic",
]
