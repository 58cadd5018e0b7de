"""Training loop: run files, exact resume, clear errors (spec section 5)."""

from __future__ import annotations

import csv
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file

from tests.helpers import tiny_config
from tkam.build import build_model
from tkam.config import ExperimentConfig
from tkam.data import load_dataset
from tkam.train import TrainingError, fit
from tkam.train.callbacks import Callback
from tkam.train.checkpoint import CheckpointError, load_checkpoint


def _params(path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def _with_steps(config: ExperimentConfig, steps: int) -> ExperimentConfig:
    return replace(config, train=replace(config.train, max_steps=steps))


def test_fit_writes_the_run_folder(tmp_path) -> None:
    config = tiny_config()
    fit(config, tmp_path / "run", progress=False)
    run = tmp_path / "run"
    for name in ("config.toml", "loss.csv", "model.safetensors", "prior.png", "loss.png"):
        assert (run / name).is_file(), name
    assert sorted(p.name for p in (run / "samples").glob("*.png")) == [
        "step_000001.png",
        "step_000004.png",
        "step_000008.png",
    ]
    rows = list(csv.DictReader((run / "loss.csv").open()))
    assert [int(r["Step"]) for r in rows] == [1, 4, 8]
    assert {
        "Time (s)",
        "Epoch",
        "Train MLE Loss",
        "Test MSE Loss",
        "Grid Updated",
        "Mean ESS",
    } <= set(rows[0])
    assert all(1.0 <= float(r["Mean ESS"]) <= 16.0 for r in rows)
    assert int(rows[0]["Grid Updated"]) == 1  # step 1 always updates the grids
    assert (run / "samples" / "step_000008.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_resume_is_bitwise_exact(tmp_path) -> None:
    k = 6
    config = tiny_config(
        train={"max_steps": 2 * k, "log_every": 3}, grid_update={"frequency": 4, "decay": 0.9}
    )
    fit(config, tmp_path / "straight", progress=False)
    fit(_with_steps(config, k), tmp_path / "split", progress=False)
    fit(config, tmp_path / "split", resume=True, progress=False)
    straight = _params(tmp_path / "straight" / "model.safetensors")
    split = _params(tmp_path / "split" / "model.safetensors")
    assert straight.keys() == split.keys()
    for name in straight:
        assert torch.equal(straight[name], split[name]), name
    # The split run really stopped halfway: its first model file was overwritten at 2k.
    rows = list(csv.DictReader((tmp_path / "split" / "loss.csv").open()))
    assert [int(r["Step"]) for r in rows] == [1, 3, 6, 9, 12]


def test_existing_run_needs_resume_and_resume_needs_a_run(tmp_path) -> None:
    config = tiny_config(train={"max_steps": 2})
    with pytest.raises(TrainingError, match="nothing to resume"):
        fit(config, tmp_path / "run", resume=True, progress=False)
    fit(config, tmp_path / "run", progress=False)
    with pytest.raises(TrainingError, match="--resume"):
        fit(config, tmp_path / "run", progress=False)


def test_truncated_checkpoint_is_detected_and_skipped(tmp_path) -> None:
    config = tiny_config(train={"max_steps": 4, "log_every": 2})
    fit(config, tmp_path / "run", progress=False)
    checkpoints = sorted((tmp_path / "run" / "checkpoints").glob("*.safetensors"))
    newest = checkpoints[-1]
    newest.write_bytes(newest.read_bytes()[:100])
    model = build_model(config, (1, 8, 8))
    with pytest.raises(CheckpointError, match=newest.name):
        load_checkpoint(newest, model)
    with pytest.warns(UserWarning, match="unreadable checkpoint"):
        fit(_with_steps(config, 6), tmp_path / "run", resume=True, progress=False)


def test_non_finite_loss_names_the_step(tmp_path) -> None:
    config = tiny_config(train={"max_steps": 3, "log_every": 0})
    data = load_dataset(config.data)
    bad = data._replace(train=data.train.clone())
    bad.train[:] = float("nan")
    with pytest.raises(TrainingError, match="step 1"):
        fit(config, tmp_path / "run", data=bad, progress=False)


class _Events(Callback):
    """Records the trainer's events as ``name:step``."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def on_start(self, run) -> None:
        self.events.append(f"start:{run.state.step}")

    def on_step(self, run, output) -> None:
        self.events.append(f"step:{run.state.step}")

    def on_log(self, run, entry) -> None:
        assert entry.step == run.state.step
        self.events.append(f"log:{entry.step}")

    def on_checkpoint(self, run) -> None:
        self.events.append(f"checkpoint:{run.state.step}")

    def on_end(self, run) -> None:
        assert not run.model.training
        self.events.append(f"end:{run.state.step}")


def test_events_come_at_log_checkpoint_and_end_points(tmp_path) -> None:
    # Logs at step 1, every 2 steps and the last step, each followed by a checkpoint; periodic
    # checkpoints every 3 steps in between.
    config = tiny_config(train={"max_steps": 5, "log_every": 2, "checkpoint_every": 3})
    events = _Events()
    fit(config, tmp_path / "run", progress=False, callbacks=[events])
    assert events.events == [
        *("start:0", "step:1", "log:1", "checkpoint:1", "step:2", "log:2", "checkpoint:2"),
        *("step:3", "checkpoint:3", "step:4", "log:4", "checkpoint:4"),
        *("step:5", "log:5", "checkpoint:5", "end:5"),
    ]
