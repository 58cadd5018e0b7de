"""Every posterior sampler and estimator; it sees only log-densities and log-likelihoods.

Nothing here knows about KANs or priors (design 2): importance sampling and
resampling over log-likelihood matrices, ULA/MALA (:mod:`~tkam.posterior.langevin`) and autoMALA
(:mod:`~tkam.posterior.automala`) over chain states (:mod:`~tkam.posterior.state`), and tempered
populations with replica exchange and the thermodynamic integral
(:mod:`~tkam.posterior.tempering`).
"""

from __future__ import annotations

from tkam.posterior.automala import (
    AutoMALAInfo,
    AutoMALAState,
    automala,
    automala_init,
    automala_step,
    mixed_preconditioner,
)
from tkam.posterior.importance import (
    SIRResult,
    importance_resample,
    importance_weights,
    log_evidence,
)
from tkam.posterior.langevin import (
    LangevinInfo,
    langevin_proposal,
    mala,
    mala_step,
    ula,
    ula_step,
)
from tkam.posterior.memory import StepSizeMemory
from tkam.posterior.resampling import (
    RESAMPLERS,
    Resampler,
    multinomial,
    resample,
    residual,
    stratified,
    systematic,
)
from tkam.posterior.state import (
    LangevinState,
    LogDensity,
    Support,
    init_state,
    on_rows,
    reflect,
    refresh_state,
)
from tkam.posterior.tempering import (
    ULA,
    AutoMALA,
    ReplicaExchangeResult,
    Sampler,
    TemperedChains,
    TemperedLogDensity,
    TemperedRun,
    TemperedState,
    TemperedTarget,
    power_schedule,
    replica_exchange,
    swap_index,
    temperatures,
    tempered_init,
    tempered_langevin,
    tempered_ula_step,
    thermodynamic_integral,
)

__all__ = [
    "StepSizeMemory",
    "AutoMALA",
    "AutoMALAInfo",
    "AutoMALAState",
    "LangevinInfo",
    "LangevinState",
    "LogDensity",
    "RESAMPLERS",
    "ReplicaExchangeResult",
    "Resampler",
    "SIRResult",
    "Sampler",
    "Support",
    "TemperedChains",
    "TemperedLogDensity",
    "TemperedRun",
    "TemperedState",
    "TemperedTarget",
    "ULA",
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
    "on_rows",
    "multinomial",
    "power_schedule",
    "reflect",
    "refresh_state",
    "replica_exchange",
    "resample",
    "residual",
    "stratified",
    "swap_index",
    "systematic",
    "tempered_init",
    "tempered_langevin",
    "tempered_ula_step",
    "temperatures",
    "thermodynamic_integral",
    "ula",
    "ula_step",
]
