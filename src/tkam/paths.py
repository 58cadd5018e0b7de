"""The names of the files in a run folder, in one place.

:class:`RunPaths` names everything a run folder may hold: what ``tkam train`` writes
(``config.toml``, ``loss.csv``, ``checkpoints/step_*.safetensors``, ``samples/step_*.png``,
``model.safetensors`` and the figures ``prior.png``, ``loss.png``, ``evolution.gif``), what ``tkam
plot`` (``plots/``) and ``tkam evaluate`` (``metrics.json``) add, and tkam's own bookkeeping (the
lock and the manifest, :mod:`tkam.train.lock` and :mod:`tkam.manifest`). Every module that reads
or writes a run folder takes its names from here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LOCK_NAME", "MANIFEST_NAME", "Figures", "RunPaths", "sample_grids", "step_of"]

#: The lock a training process holds on its run folder.
LOCK_NAME = ".lock"
#: The list of the files tkam wrote into a run folder.
MANIFEST_NAME = "tkam-manifest.json"

_CHECKPOINT_GLOB = "step_*.safetensors"
_SAMPLE_GRID_GLOBS = ("step_*.png", "step_*.txt")
_STEP = re.compile(r"^step_(\d+)\.[a-z]+$")


def step_of(path: str | Path) -> int | None:
    """The step of a checkpoint or sample grid (``step_<step>.<suffix>``), or None for a file of
    another name."""
    match = _STEP.match(Path(path).name)
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class Figures:
    """The figures of a run in ``folder``: training writes ``prior``, ``losses`` and
    ``evolution`` into the run folder; ``tkam plot`` writes all five into ``RUN/plots`` (or its
    ``--out``)."""

    folder: Path

    @property
    def prior(self) -> Path:
        """A few prior components over ``pi_0``."""
        return self.folder / "prior.png"

    @property
    def prior_grid(self) -> Path:
        """Every prior component, one band each."""
        return self.folder / "prior_grid.png"

    @property
    def losses(self) -> Path:
        """The loss curves of ``loss.csv``."""
        return self.folder / "loss.png"

    @property
    def samples(self) -> Path:
        """A grid of samples of the trained model."""
        return self.folder / "samples.png"

    @property
    def evolution(self) -> Path:
        """The sample grids of training as an animation."""
        return self.folder / "evolution.gif"

    def all(self) -> tuple[Path, ...]:
        return (self.prior, self.prior_grid, self.losses, self.samples, self.evolution)


@dataclass(frozen=True)
class RunPaths:
    """The files of one run folder."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def config(self) -> Path:
        """The resolved config (``tkam train``)."""
        return self.root / "config.toml"

    @property
    def loss_csv(self) -> Path:
        """The loss log, a row per log event."""
        return self.root / "loss.csv"

    @property
    def model(self) -> Path:
        """The trained model, written when the run finishes."""
        return self.root / "model.safetensors"

    @property
    def metrics(self) -> Path:
        """``tkam evaluate``'s metrics."""
        return self.root / "metrics.json"

    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST_NAME

    @property
    def lock(self) -> Path:
        return self.root / LOCK_NAME

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def samples(self) -> Path:
        """The sample grids written at every log event."""
        return self.root / "samples"

    @property
    def figures(self) -> Figures:
        """The figures a finished training writes into the run folder."""
        return Figures(self.root)

    @property
    def plots(self) -> Figures:
        """``tkam plot``'s figures, by default in ``RUN/plots``."""
        return Figures(self.root / "plots")

    def checkpoint(self, step: int) -> Path:
        """The checkpoint of ``step``."""
        return self.checkpoints / f"step_{step:08d}.safetensors"

    def sample_grid(self, step: int, suffix: str = ".png") -> Path:
        """The sample grid of ``step``: ``.png`` for images, ``.txt`` for token sequences."""
        return self.samples / f"step_{step:06d}{suffix}"

    def checkpoint_files(self) -> list[Path]:
        """The checkpoints in the folder, newest step first."""
        if not self.checkpoints.is_dir():
            return []
        return sorted(self.checkpoints.glob(_CHECKPOINT_GLOB), reverse=True)

    def folders(self) -> tuple[Path, ...]:
        """The folders of a run: checkpoints, sample grids and ``tkam plot``'s figures."""
        return (self.checkpoints, self.samples, self.plots.folder)

    def run_files(self) -> list[Path]:
        """The files in the folder at names a tkam run writes: the fixed names, checkpoints,
        sample grids and ``plots/``'s figures (the lock and the manifest are not run files)."""
        figures = self.figures
        fixed = (self.config, self.loss_csv, self.model, figures.prior, figures.losses)
        found = [path for path in (*fixed, figures.evolution, self.metrics) if path.is_file()]
        found += sorted(self.checkpoints.glob(_CHECKPOINT_GLOB))
        for pattern in _SAMPLE_GRID_GLOBS:
            found += sorted(self.samples.glob(pattern))
        return found + [path for path in self.plots.all() if path.is_file()]


def sample_grids(folder: str | Path, suffix: str = ".png") -> list[Path]:
    """The sample grids (``step_<step><suffix>``) in a run's samples folder, oldest first."""
    steps = {path: step_of(path) for path in Path(folder).glob(f"step_*{suffix}")}
    return sorted(
        (path for path, step in steps.items() if step is not None), key=lambda p: (steps[p], p)
    )
