"""Training callbacks, each on its own: the loss log, sample grids, checkpoints, final files."""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import signal
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from tests.helpers import tiny_config
from tkam.build import build_model
from tkam.manifest import MANIFEST_NAME
from tkam.plots import image_grid
from tkam.prior import component_divergences, summarise
from tkam.runs import load_run
from tkam.train.callbacks import (
    LOSS_COLUMNS,
    Callback,
    CallbackList,
    Checkpoints,
    FinalArtifacts,
    LossLog,
    SampleImages,
    _test_mse,
)
from tkam.train.checkpoint import load_checkpoint, read_metadata
from tkam.train.loop import build_run, fit
from tkam.train.run import LogEntry, RunState, log_interval


def _rows(path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _files(folder) -> list[str]:
    """The run's files, without the writer's lock (``.lock``, see tests/train/test_lock.py) and
    the manifest (tests/train/test_run_folder.py)."""
    skip = (".lock", MANIFEST_NAME)
    files = (p for p in folder.rglob("*") if p.is_file() and p.name not in skip)
    return sorted(str(p.relative_to(folder)) for p in files)


def _entry(step: int, **values) -> LogEntry:
    fields = {"epoch": 0, "elapsed": 0.0, "mean_loss": 1.0, "mean_ess": 2.0}
    fields |= {"grid_updated": False, "skipped": 0, "updates": 1}
    return LogEntry(step=step, **(fields | values))


# --- LossLog ---


def test_loss_log_writes_one_row_per_log_event_and_nothing_else(tmp_path) -> None:
    # 200 items in batches of 20: 10 steps an epoch; log_every 0 logs at step 1, then every
    # min(10, ceil(12 / 10)) = 2 steps (step 12 is in epoch 1). Grids update at step 1 only.
    config = tiny_config(train={"max_steps": 12, "log_every": 0}, grid_update={"frequency": 100})
    model = fit(config, tmp_path / "run", progress=False, callbacks=[LossLog()])
    assert _files(tmp_path / "run") == ["config.toml", "loss.csv"]
    with (tmp_path / "run" / "loss.csv").open(newline="") as handle:
        assert next(csv.reader(handle)) == LOSS_COLUMNS
    rows = _rows(tmp_path / "run" / "loss.csv")
    assert [int(r["Step"]) for r in rows] == [1, 2, 4, 6, 8, 10, 12]
    assert [int(r["Epoch"]) for r in rows] == [0, 0, 0, 0, 0, 0, 1]
    assert [int(r["Grid Updated"]) for r in rows] == [1, 0, 0, 0, 0, 0, 0]
    assert [int(r["Skipped Steps"]) for r in rows] == [0] * 7
    assert all(1.0 <= float(r["Mean ESS"]) <= 16.0 for r in rows)  # 16 importance samples
    assert all(math.isfinite(float(r["Train MLE Loss"])) for r in rows)
    times = [float(r["Time (s)"]) for r in rows]
    assert times == sorted(times) and times[0] > 0
    # The last test MSE is that of the final model against samples seeded by (seed, step).
    test_x = build_run(config, tmp_path / "other").test_x
    expected = _test_mse(model, test_x, 20, seed=config.train.seed * 7 + 12)
    assert rows[-1]["Test MSE Loss"] == f"{expected:.6g}"


@pytest.mark.parametrize(
    ("log_every", "steps_per_epoch", "total_steps", "interval"),
    [
        (0, 500, 5000, 500),  # mnist/fmnist: ten epochs, a row at the end of each (as before)
        (0, 500, 50_000, 500),  # a longer run: still once an epoch
        (0, 500, 300, 30),  # a 300-step run: ten rows, not two
        (0, 10, 12, 2),
        (0, 10, 5, 1),  # shorter than ten steps: every step
        (0, 1, 100, 1),
        (7, 500, 300, 7),  # a positive log_every is kept as it is
    ],
)
def test_the_default_log_cadence_gives_short_runs_a_curve(
    log_every, steps_per_epoch, total_steps, interval
) -> None:
    assert log_interval(log_every, steps_per_epoch, total_steps) == interval


def test_a_run_shorter_than_an_epoch_logs_about_ten_rows_and_the_same_losses(tmp_path) -> None:
    # 30 steps of 10-step epochs: rows at 1, 3, 6, ..., 30 (the old default logged 1, 10, 20, 30).
    # Which steps are logged changes no update: the model equals that of a run logging each step.
    config = tiny_config(train={"max_steps": 30, "log_every": 0}, grid_update={"frequency": 100})
    model = fit(config, tmp_path / "run", progress=False, callbacks=[LossLog()])
    rows = _rows(tmp_path / "run" / "loss.csv")
    assert [int(r["Step"]) for r in rows] == [1, *range(3, 31, 3)]
    every_step = dataclasses.replace(config.train, log_every=1)
    other = fit(
        dataclasses.replace(config, train=every_step),
        tmp_path / "every",
        progress=False,
        callbacks=[LossLog()],
    )
    assert len(_rows(tmp_path / "every" / "loss.csv")) == 30
    for name, value in model.state_dict().items():
        assert torch.equal(other.state_dict()[name], value), name


def test_loss_log_row_formats(tmp_path) -> None:
    run = build_run(tiny_config(), tmp_path / "run")
    log = LossLog()
    log.on_start(run)
    entry = _entry(7, epoch=2, elapsed=1.23456, mean_loss=12.3456789, mean_ess=float("nan"))
    log.on_log(run, dataclasses.replace(entry, grid_updated=True, skipped=2))
    with run.paths.loss_csv.open(newline="") as handle:
        header, row = list(csv.reader(handle))
    assert header == LOSS_COLUMNS
    assert row[:3] == ["1.235", "2", "12.3457"]
    assert float(row[3]) > 0  # test MSE
    assert row[4:8] == ["1", "7", "", "2"]  # no ESS for a NaN mean
    tv_median = summarise(*component_divergences(run.model.prior))["tv_median"]
    assert row[8] == f"{tv_median:.4g}" and 0 < float(row[8]) < 1  # the prior's median TV


def test_loss_log_keeps_the_rows_up_to_the_checkpoint_on_resume(tmp_path) -> None:
    run = build_run(tiny_config(), tmp_path / "run")
    path = run.paths.loss_csv
    rows = [["0.5", "0", "3.1", "0.2", "1", "1", "9.5", "0", "0.01"]]
    rows += [["1.5", "0", "2.1", "0.2", "0", "4", "9.1", "0", "0.02"]]
    rows += [["2.5", "0", "1.1", "0.2", "0", "8", "8.7", "0", "0.03"]]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(LOSS_COLUMNS)
        writer.writerows(rows)
        handle.write("3.5,0,1.")  # a row cut by a crash
    LossLog().on_start(dataclasses.replace(run, resumed=True, state=RunState(step=4)))
    with path.open(newline="") as handle:
        assert list(csv.reader(handle)) == [LOSS_COLUMNS, *rows[:2]]
    assert _files(path.parent) == ["config.toml", "loss.csv"]
    LossLog().on_start(run)  # a fresh run starts over
    with path.open(newline="") as handle:
        assert list(csv.reader(handle)) == [LOSS_COLUMNS]


@pytest.mark.parametrize("columns", [len(LOSS_COLUMNS) - 1, len(LOSS_COLUMNS) - 2])
def test_loss_log_resumes_a_file_from_before_the_last_columns(tmp_path, columns) -> None:
    # loss.csv written before "Prior TV" (and before "Skipped Steps") was added: its rows are kept
    # under the current header, with empty cells in the columns they lack.
    run = build_run(tiny_config(), tmp_path / "run")
    path = run.paths.loss_csv
    old = [["0.5", "0", "3.1", "0.2", "1", "1", "9.5", "0"], ["1.5", "0", "2.1", "0.2", "0", "4"]]
    old[1] += ["9.1", "0"]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(LOSS_COLUMNS[:columns])
        writer.writerows(row[:columns] for row in old)
    LossLog().on_start(dataclasses.replace(run, resumed=True, state=RunState(step=4)))
    padding = [""] * (len(LOSS_COLUMNS) - columns)
    with path.open(newline="") as handle:
        assert list(csv.reader(handle)) == [LOSS_COLUMNS, *(row[:columns] + padding for row in old)]
    # Another kind of file (or a header this code does not know) is not kept.
    path.write_text("step,loss\n1,2.0\n")
    LossLog().on_start(dataclasses.replace(run, resumed=True, state=RunState(step=4)))
    with path.open(newline="") as handle:
        assert list(csv.reader(handle)) == [LOSS_COLUMNS]


def test_loss_log_prior_tv_of_a_t_kam_run_and_none_without_components(tmp_path) -> None:
    config = tiny_config(train={"max_steps": 6, "log_every": 3})
    model = fit(config, tmp_path / "tkam", progress=False, callbacks=[LossLog()])
    rows = _rows(tmp_path / "tkam" / "loss.csv")
    assert [int(r["Step"]) for r in rows] == [1, 3, 6]
    values = [float(r["Prior TV"]) for r in rows]
    assert all(math.isfinite(v) and 0 < v < 1 for v in values)
    # The last row is the median TV of the final prior.
    final = summarise(*component_divergences(model.prior))["tv_median"]
    assert rows[-1]["Prior TV"] == f"{final:.4g}"
    vae = tiny_config(model={"kind": "vae"}, train={"max_steps": 2, "log_every": 1})
    fit(vae, tmp_path / "vae", progress=False, callbacks=[LossLog()])
    assert [r["Prior TV"] for r in _rows(tmp_path / "vae" / "loss.csv")] == ["", ""]


# --- SampleImages ---


def test_sample_images_writes_the_grid_of_seeded_samples(tmp_path) -> None:
    run = build_run(tiny_config(train={"num_plot_samples": 16}), tmp_path / "run")
    SampleImages().on_log(run, _entry(5))
    assert _files(run.paths.samples) == ["step_000005.png"]
    path = run.paths.samples / "step_000005.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = np.asarray(Image.open(path).convert("L"), dtype=np.float64) / 255
    rng = torch.Generator().manual_seed(run.config.train.seed)
    expected = image_grid(run.model.sample(16, rng).float(), scale=4)  # 4x4 tiles of 32x32
    assert expected.shape == (133, 133)
    band = image.shape[0] - expected.shape[0]  # the title above the grid
    assert image.shape[1] == expected.shape[1] and 20 <= band <= 40
    np.testing.assert_allclose(image[band:], expected, atol=2 / 255)


class _FixedTokens:
    """A stand-in model whose samples are one-hot token sequences ``(N, n_v=5, L=3)``."""

    def __init__(self, tokens: list[list[int]]) -> None:
        self.tokens = torch.tensor(tokens)

    def sample(self, num_samples: int, rng: torch.Generator) -> torch.Tensor:
        one_hot = torch.nn.functional.one_hot(self.tokens[:num_samples], 5)  # (N, L, n_v)
        return one_hot.transpose(1, 2).float()


def test_sample_images_writes_token_indices_for_sequences(tmp_path) -> None:
    run = build_run(tiny_config(train={"num_plot_samples": 2}), tmp_path / "run")
    tokens = [[4, 0, 2], [1, 3, 3]]
    sequences = dataclasses.replace(run, model=_FixedTokens(tokens), train_x=torch.zeros(4, 5, 3))
    SampleImages().on_log(sequences, _entry(12))
    assert _files(run.paths.samples) == ["step_000012.txt"]
    assert (run.paths.samples / "step_000012.txt").read_text() == "4 0 2\n1 3 3\n"


# --- Checkpoints ---


def test_checkpoints_keep_the_newest_three(tmp_path) -> None:
    config = tiny_config(train={"max_steps": 6, "log_every": 0, "checkpoint_every": 1})
    model = fit(config, tmp_path / "run", progress=False, callbacks=[Checkpoints()])
    assert _files(tmp_path / "run") == [
        "checkpoints/step_00000004.safetensors",
        "checkpoints/step_00000005.safetensors",
        "checkpoints/step_00000006.safetensors",
        "config.toml",
    ]
    newest = tmp_path / "run" / "checkpoints" / "step_00000006.safetensors"
    restored = build_model(config, (1, 8, 8))
    rngs = {"shard_0": torch.Generator(), "shared": torch.Generator()}
    state = load_checkpoint(newest, restored, rngs=rngs)
    assert state["step"] == 6 and state["schedule"]["last"] == 6  # grids updated at 1 and 6
    for name, value in model.state_dict().items():
        assert torch.equal(restored.state_dict()[name], value), name
    assert read_metadata(newest)["shards"] == "1"


class _SignalAt(Callback):
    """Sends this process ``signals`` after update ``step``, as a user or a scheduler would."""

    def __init__(self, step: int, *signals: int) -> None:
        self.step, self.signals = step, signals

    def on_step(self, run, output) -> None:
        if run.state.step == self.step:
            for sig in self.signals:
                os.kill(os.getpid(), sig)


def test_checkpoints_write_one_when_a_signal_stops_the_run(tmp_path) -> None:
    config = tiny_config(train={"max_steps": 50, "log_every": 0, "checkpoint_every": 0})
    callbacks = [Checkpoints(), _SignalAt(3, signal.SIGTERM)]
    with pytest.raises(KeyboardInterrupt, match="after step 3"):
        fit(config, tmp_path / "run", progress=False, callbacks=callbacks)
    assert _files(tmp_path / "run" / "checkpoints") == [
        "step_00000001.safetensors",  # the log event of step 1
        "step_00000003.safetensors",  # the stop
    ]


def test_a_second_signal_stops_at_once_without_a_checkpoint(tmp_path) -> None:
    config = tiny_config(train={"max_steps": 50, "log_every": 0, "checkpoint_every": 0})
    callbacks = [Checkpoints(), _SignalAt(3, signal.SIGINT, signal.SIGINT)]
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        fit(config, tmp_path / "run", progress=False, callbacks=callbacks)
    assert _files(tmp_path / "run" / "checkpoints") == ["step_00000001.safetensors"]
    assert signal.getsignal(signal.SIGINT) is before  # the trainer's handlers are gone


# --- FinalArtifacts ---


def test_final_artifacts_write_a_loadable_model_and_the_prior(tmp_path) -> None:
    config = tiny_config(train={"max_steps": 2})
    model = fit(config, tmp_path / "run", progress=False, callbacks=[FinalArtifacts()])
    # No loss.csv and no sample grids: no loss.png and no evolution.gif.
    assert _files(tmp_path / "run") == ["config.toml", "model.safetensors", "prior.png"]
    assert (tmp_path / "run" / "prior.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    metadata = read_metadata(tmp_path / "run" / "model.safetensors")
    assert (metadata["step"], metadata["image_shape"], metadata["dataset"]) == (
        "2",
        "1,8,8",
        "digits",
    )
    _, loaded = load_run(tmp_path / "run")
    for name, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name


def test_final_artifacts_skip_the_prior_plot_without_components(tmp_path) -> None:
    config = tiny_config(model={"kind": "vae"}, train={"max_steps": 2})
    fit(config, tmp_path / "run", progress=False, callbacks=[FinalArtifacts()])
    assert _files(tmp_path / "run") == ["config.toml", "model.safetensors"]
    assert set(load_file(str(tmp_path / "run" / "model.safetensors")))


def test_final_artifacts_plot_the_log_and_the_sample_grids(tmp_path) -> None:
    config = tiny_config(train={"max_steps": 4, "log_every": 2})
    callbacks = [LossLog(), SampleImages(), FinalArtifacts()]
    fit(config, tmp_path / "run", progress=False, callbacks=callbacks)
    names = _files(tmp_path / "run")
    assert {"loss.png", "evolution.gif", "prior.png", "model.safetensors"} <= set(names)
    with Image.open(tmp_path / "run" / "evolution.gif") as gif:
        assert gif.n_frames == 3  # steps 1, 2 and 4


# --- CallbackList ---


class _Recorder(Callback):
    def __init__(self, events: list[str], name: str, all_ranks: bool = False) -> None:
        self.events, self.name, self.all_ranks = events, name, all_ranks

    def on_start(self, run) -> None:
        self.events.append(f"{self.name}:start")

    def on_checkpoint(self, run) -> None:
        self.events.append(f"{self.name}:checkpoint")


def test_callback_list_calls_in_order_and_only_collective_ones_off_rank_zero() -> None:
    events: list[str] = []
    callbacks = CallbackList([_Recorder(events, "a"), _Recorder(events, "b", all_ranks=True)])
    callbacks.on_start(SimpleNamespace(is_main=True))
    callbacks.on_checkpoint(SimpleNamespace(is_main=True))
    assert events == ["a:start", "b:start", "a:checkpoint", "b:checkpoint"]
    events.clear()
    callbacks.on_start(SimpleNamespace(is_main=False))
    callbacks.on_checkpoint(SimpleNamespace(is_main=False))
    assert events == ["b:start", "b:checkpoint"]
