"""What --resume may change (tkam.train.resume): resumable settings take effect, in the optimiser
too, and are recorded; any other change is refused naming the keys, before anything is written."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
import tomllib
import warnings
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file

from tests.helpers import tiny_config
from tkam.config import config_to_dict, dumps_toml
from tkam.train import TrainingError, fit
from tkam.train.callbacks import Callback, default_callbacks
from tkam.train.checkpoint import read_metadata
from tkam.train.resume import RESUMABLE, config_changes, refused_changes


class _Rates(Callback):
    """Records the optimiser's learning rates at every update."""

    def __init__(self) -> None:
        self.rates: list[list[float]] = []

    def on_step(self, run, output) -> None:
        self.rates.append([group["lr"] for group in run.optimizer.param_groups])


def _flat_keys(data, prefix="") -> set[str]:
    keys = set()
    for key, value in data.items():
        if isinstance(value, dict):
            keys |= _flat_keys(value, f"{prefix}{key}.")
        else:
            keys.add(prefix + key)
    return keys


def test_every_resumable_key_is_a_config_key() -> None:
    assert RESUMABLE <= _flat_keys(config_to_dict(tiny_config()))


def test_config_changes_name_both_values() -> None:
    saved = tiny_config()
    current = tiny_config(prior={"basis": "fft"}, train={"learning_rate": 0.01})
    changes = config_changes(saved, current)
    assert changes["prior.basis"] == ("rbf", "fourier")
    assert changes["train.learning_rate"] == (saved.train.learning_rate, 0.01)
    assert refused_changes(saved, current) == ["prior.basis: 'rbf' -> 'fourier'"]


def test_resume_with_a_new_learning_rate_uses_it(tmp_path) -> None:
    base = tiny_config(train={"max_steps": 4, "log_every": 2, "learning_rate": 1e-3})
    fit(base, tmp_path / "run", progress=False)
    fit(base, tmp_path / "same", progress=False)
    longer = replace(base.train, max_steps=7, log_every=1)
    rates = _Rates()
    new = replace(base, train=replace(longer, learning_rate=1e-2))
    fit(new, tmp_path / "run", resume=True, progress=False, callbacks=[*default_callbacks(), rates])
    assert rates.rates == [[1e-2]] * 3  # every update after the resume, every group
    # Recorded: config.toml and the checkpoints written since.
    saved = tomllib.loads((tmp_path / "run" / "config.toml").read_text())
    assert saved["train"]["learning_rate"] == 1e-2
    newest = sorted((tmp_path / "run" / "checkpoints").glob("*.safetensors"))[-1]
    assert tomllib.loads(read_metadata(newest)["config"])["train"]["learning_rate"] == 1e-2
    # The log cadence changed too: one row per update after step 4.
    steps = [int(row["Step"]) for row in csv.DictReader((tmp_path / "run" / "loss.csv").open())]
    assert steps == [1, 2, 4, 5, 6, 7]
    # And it made a difference: the same resume at the old rate ends elsewhere.
    fit(replace(base, train=longer), tmp_path / "same", resume=True, progress=False)
    fast = load_file(str(tmp_path / "run" / "model.safetensors"))
    slow = load_file(str(tmp_path / "same" / "model.safetensors"))
    moved = {n: (fast[n] - slow[n]).abs().max().item() for n in fast if fast[n].numel()}
    assert max(moved.values()) > 1e-3, moved


def test_resume_refuses_other_changes_naming_the_keys(tmp_path) -> None:
    config = tiny_config(train={"max_steps": 2})
    fit(config, tmp_path / "run", progress=False)
    before = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir() if p.is_file()}
    changed = tiny_config(prior={"basis": "fft"}, train={"max_steps": 4, "batch_size": 10})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no checkpoint is called unreadable
        with pytest.raises(TrainingError) as info:
            fit(changed, tmp_path / "run", resume=True, progress=False)
    message = str(info.value)
    assert "prior.basis: 'rbf' -> 'fourier'" in message
    assert "train.batch_size: 20 -> 10" in message
    assert "train.max_steps" not in message.split("A resume may change only")[0]
    assert "train.learning_rate" in message  # the keys that may change are listed
    after = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir() if p.is_file()}
    assert after.keys() == before.keys()
    for name in before:
        if name != ".lock":
            assert after[name] == before[name], name


class _AdamSteps(Callback):
    """Records Adam's step count of the first parameter at every update."""

    def __init__(self) -> None:
        self.steps: list[int] = []

    def on_step(self, run, output) -> None:
        first = run.optimizer.param_groups[0]["params"][0]
        self.steps.append(int(run.optimizer.state[first]["step"]))


def test_a_new_rate_keeps_the_restored_adam_state(tmp_path) -> None:
    # Only the rate changes: Adam's moments and step count continue from the checkpoint (a fresh
    # optimiser would count from 1 again).
    config = tiny_config(train={"max_steps": 3, "log_every": 3})
    fit(config, tmp_path / "run", progress=False)
    steps = _AdamSteps()
    resumed = replace(config, train=replace(config.train, max_steps=5, learning_rate=5e-3))
    fit(
        resumed,
        tmp_path / "run",
        resume=True,
        progress=False,
        callbacks=[*default_callbacks(), steps],
    )
    assert steps.steps == [4, 5]


def _tkam_train(config_path, out, *extra: str) -> list[str]:
    """``python -m tkam train CONFIG --out OUT --no-progress ...``, one intra-op thread."""
    command = [sys.executable, "-m", "tkam", "train", str(config_path), "--out", str(out)]
    return [*command, "--no-progress", *extra]


def _one_thread() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("WORLD_SIZE", None)
    env["OMP_NUM_THREADS"] = "1"
    return env


def test_sigterm_during_tkam_train_exits_143_and_leaves_a_checkpoint_to_resume(tmp_path) -> None:
    # A long run stopped by SIGTERM (as a scheduler does) once its step-1 checkpoint exists: the
    # process exits with 143 (128 + SIGTERM), having written a checkpoint at the step it stopped
    # after; --resume from the run's config.toml finishes it three steps later, bitwise where a
    # run of that length straight through ends (the importance loss does not read the length).
    config_path = tmp_path / "tiny.toml"
    config_path.write_text(dumps_toml(tiny_config(train={"max_steps": 100_000, "log_every": 1000})))
    run = tmp_path / "run"
    process = subprocess.Popen(
        _tkam_train(config_path, run), env=_one_thread(), stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 120
    while not (run / "checkpoints" / "step_00000001.safetensors").is_file():
        assert process.poll() is None and time.monotonic() < deadline, "no step-1 checkpoint"
        time.sleep(0.05)
    time.sleep(0.3)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 143, err[-3000:]
    assert "Traceback" not in err and "resume with --resume" in err
    newest = sorted((run / "checkpoints").glob("step_*.safetensors"))[-1]
    stopped = int(newest.stem.split("_")[1])
    assert stopped > 1 and f"after step {stopped}" in err
    assert not (run / "model.safetensors").exists()

    length = f"train.max_steps={stopped + 3}"
    resumed = subprocess.run(
        _tkam_train(run / "config.toml", run, "--resume", "--set", length),
        env=_one_thread(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    straight = subprocess.run(
        _tkam_train(config_path, tmp_path / "straight", "--set", length),
        env=_one_thread(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert straight.returncode == 0, straight.stderr[-3000:]
    a = load_file(str(run / "model.safetensors"))
    b = load_file(str(tmp_path / "straight" / "model.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    steps = [int(row["Step"]) for row in csv.DictReader((run / "loss.csv").open())]
    assert steps == [1, stopped + 3]  # the rows up to the stop, then the last step's
