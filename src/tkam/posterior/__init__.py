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
from tkam.posterior.langevin import (
    AutoMALAInfo,
    AutoMALAState,
    LangevinInfo,
    LangevinState,
    automala,
    automala_init,
    automala_step,
    init_state,
    langevin_proposal,
    mala,
    mala_step,
    mixed_preconditioner,
    refresh_state,
    ula,
    ula_step,
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
from tkam.posterior.tempering import (
    ReplicaExchangeResult,
    power_schedule,
    replica_exchange,
    temperatures,
    tempered_log_density,
    thermodynamic_integral,
)

__all__ = [
    "AutoMALAInfo",
    "AutoMALAState",
    "LangevinInfo",
    "LangevinState",
    "RESAMPLERS",
    "ReplicaExchangeResult",
    "Resampler",
    "SIRResult",
    "automala",
    "automala_init",
    "automala_step",
    "importance_resample",
    "importance_weights",
    "init_state",
    "langevin_proposal",
    "log_evidence",
    "mala",
    "mala_step",
    "mixed_preconditioner",
    "multinomial",
    "power_schedule",
    "refresh_state",
    "replica_exchange",
    "resample",
    "residual",
    "stratified",
    "systematic",
    "temperatures",
    "tempered_log_density",
    "thermodynamic_integral",
    "ula",
    "ula_step",
]
