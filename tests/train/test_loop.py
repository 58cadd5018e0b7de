"""Training loop: run files, exact resume, clear errors (maths 5)."""

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
from tkam.prior import UnivariatePrior
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
    assert all(0 < float(r["Prior TV"]) < 1 for r in rows)  # the prior's median TV from pi_0
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


def test_resume_keeps_a_loss_csv_written_before_the_prior_tv_column(tmp_path) -> None:
    # A run logged by a version without "Prior TV": its rows keep an empty cell there, the rows
    # logged after resuming have the prior's median TV.
    config = tiny_config(train={"max_steps": 6, "log_every": 3})
    run = tmp_path / "run"
    fit(_with_steps(config, 3), run, progress=False)
    path = run / "loss.csv"
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0][-1] == "Prior TV"
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows(row[:-1] for row in rows)
    fit(config, run, resume=True, progress=False)
    logged = list(csv.DictReader(path.open()))
    assert [int(r["Step"]) for r in logged] == [1, 3, 6]
    assert [r["Prior TV"] for r in logged[:2]] == ["", ""]
    assert 0 < float(logged[2]["Prior TV"]) < 1
    # The other cells of the old rows are as they were.
    assert [list(r.values())[:-1] for r in logged[:2]] == [row[:-1] for row in rows[1:]]


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


def test_skipped_updates_are_logged_without_a_loss(tmp_path) -> None:
    # One NaN item poisons the one batch of the epoch that holds it (200 items, batches of 20):
    # that update is skipped and its row has no loss and no ESS, the other nine do.
    config = tiny_config(train={"max_steps": 10, "log_every": 1, "skip_nonfinite": True})
    data = load_dataset(config.data)
    bad = data._replace(train=data.train.clone())
    bad.train[7] = float("nan")
    fit(config, tmp_path / "run", data=bad, progress=False)
    rows = list(csv.DictReader((tmp_path / "run" / "loss.csv").open()))
    assert [int(row["Step"]) for row in rows] == list(range(1, 11))
    skipped = [row for row in rows if row["Skipped Steps"] == "1"]
    assert len(skipped) == 1 and skipped[0]["Train MLE Loss"] == skipped[0]["Mean ESS"] == ""
    applied = [row for row in rows if row["Skipped Steps"] == "0"]
    assert len(applied) == 9 and all(float(row["Train MLE Loss"]) > 0 for row in applied)
    assert (tmp_path / "run" / "model.safetensors").is_file()


def test_a_run_that_skips_every_update_fails(tmp_path) -> None:
    config = tiny_config(train={"max_steps": 3, "log_every": 3, "skip_nonfinite": True})
    data = load_dataset(config.data)
    bad = data._replace(train=data.train.clone())
    bad.train[:] = float("nan")
    with pytest.raises(TrainingError, match="every update of this run was skipped"):
        fit(config, tmp_path / "run", data=bad, progress=False)
    rows = list(csv.DictReader((tmp_path / "run" / "loss.csv").open()))
    assert [(row["Step"], row["Train MLE Loss"], row["Skipped Steps"]) for row in rows] == [
        ("1", "", "1"),
        ("3", "", "2"),
    ]
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_a_failed_update_says_what_is_kept(tmp_path) -> None:
    # Without skip_nonfinite the run stops at the first bad update, naming the step, the switch
    # that would skip it, and the checkpoint there is to resume from (none before the first).
    config = tiny_config(train={"max_steps": 3, "log_every": 0})
    data = load_dataset(config.data)
    bad = data._replace(train=data.train.clone())
    bad.train[:] = float("nan")
    with pytest.raises(TrainingError, match="step 1") as info:
        fit(config, tmp_path / "run", data=bad, progress=False)
    assert "train.skip_nonfinite" in str(info.value)
    assert "no checkpoint was written yet" in str(info.value)


def test_a_non_finite_initial_prior_is_refused_before_training(tmp_path, monkeypatch) -> None:
    # A prior that gives non-finite log-densities before any update (an overflow) stops the run
    # before anything is written, naming the setting; a wide but finite domain trains.
    config = tiny_config(prior={"reference": "ebm", "grid_range": [-50.0, 50.0]})
    fit(
        replace(config, train=replace(config.train, max_steps=1)), tmp_path / "wide", progress=False
    )
    real = UnivariatePrior.log_prior
    monkeypatch.setattr(
        UnivariatePrior, "log_prior", lambda self, z, **kw: real(self, z, **kw) * float("inf")
    )
    with pytest.raises(TrainingError, match=r"prior.grid_range = \[-50.0, 50.0\] is too wide"):
        fit(config, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "config.toml").exists()


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


def test_automala_resume_is_bitwise_exact_with_its_step_sizes(tmp_path) -> None:
    # The adapted step sizes live in the checkpoint (sampler/shard_0): a run split in two
    # reaches the parameters of the straight run only if the second half starts from them.
    config = tiny_config(
        train={"max_steps": 6, "log_every": 3},
        posterior={"sampler": "automala", "steps": 3},
        grid_update={"frequency": 100},
    )
    fit(config, tmp_path / "straight", progress=False)
    fit(_with_steps(config, 3), tmp_path / "split", progress=False)
    newest = sorted((tmp_path / "split" / "checkpoints").glob("*.safetensors"))[-1]
    step_sizes = _params(newest)["sampler/shard_0"]
    assert step_sizes.shape == (20,) and not torch.all(step_sizes == config.posterior.step_size)
    fit(config, tmp_path / "split", resume=True, progress=False)
    straight = _params(tmp_path / "straight" / "model.safetensors")
    split = _params(tmp_path / "split" / "model.safetensors")
    for name in straight:
        assert torch.equal(straight[name], split[name]), name


class _Snapshots(Callback):
    """The model's parameters and buffers at the start and after every update."""

    def __init__(self) -> None:
        self.states: list[dict[str, torch.Tensor]] = []

    def _take(self, run) -> None:
        self.states.append({k: v.detach().clone() for k, v in run.model.state_dict().items()})

    def on_start(self, run) -> None:
        self._take(run)

    def on_step(self, run, output) -> None:
        self._take(run)


def test_compat_discard_refit_applies_the_update_to_the_pre_refit_coefficients(tmp_path) -> None:
    # grid_update.compat_discard_refit: the step-1 grid update refits the coefficients for the
    # loss and its gradient, then Adam's first step (lr * g / (|g| + eps), so at most lr per
    # entry) lands on the coefficients from before the refit; grids and bandwidths stay new.
    lr = 1e-3
    runs = {}
    for name, compat in (("plain", False), ("compat", True)):
        snapshots = _Snapshots()
        config = tiny_config(
            train={"max_steps": 1, "learning_rate": lr},
            grid_update={"compat_discard_refit": compat},
        )
        fit(config, tmp_path / name, progress=False, callbacks=[snapshots])
        runs[name] = snapshots.states
    (init, plain), (init_again, compat) = runs["plain"], runs["compat"]
    coefs = [k for k in init if k.endswith("coef")]
    assert len(coefs) == 3  # the prior's layer and the generator's two
    for key in init:
        torch.testing.assert_close(init[key], init_again[key])
        if key.endswith(("grid", "bandwidth")):
            torch.testing.assert_close(compat[key], plain[key])  # the new grid in both
    for key in coefs:
        step = (compat[key] - init[key]).abs()
        assert step.max() <= lr * (1 + 1e-5), key
        assert step.median() > 0.5 * lr, key
        assert (plain[key] - init[key]).abs().max() > 10 * lr, key  # the refit moved them
    for key in init:
        if not key.endswith(("coef", "grid", "bandwidth")) and init[key].is_floating_point():
            torch.testing.assert_close(compat[key], plain[key], rtol=1e-5, atol=1e-7)
