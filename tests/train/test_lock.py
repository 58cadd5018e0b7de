"""One writer per run folder (tkam.train.lock): a second writer is refused at once, a lock left by
a killed process is taken over, and --overwrite starts afresh."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
import tomllib
import warnings

import pytest
import torch

from tests.helpers import tiny_config
from tkam.config import dumps_toml
from tkam.train import TrainingError, fit
from tkam.train.checkpoint import read_metadata
from tkam.train.lock import RunFolderBusy, RunLock, TrainingRegistry
from tkam.train.loop import _advise_threads


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("WORLD_SIZE", None)
    env["OMP_NUM_THREADS"] = "1"
    return env


def _train(config_path, out, *extra: str) -> list[str]:
    return [
        *(sys.executable, "-m", "tkam", "train", str(config_path), "--out", str(out)),
        *("--no-progress", *extra),
    ]


def _wait_for(condition, process: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_second_lock_on_the_folder_is_refused_naming_the_holder(tmp_path) -> None:
    with RunLock(tmp_path / "run") as first:
        assert first.held
        with pytest.raises(RunFolderBusy, match=rf"pid {os.getpid()} on .*one writer"):
            RunLock(tmp_path / "run").acquire()
    # Released: the next writer takes it, and learns its predecessor let go cleanly.
    second = RunLock(tmp_path / "run").acquire()
    assert second.previous["pid"] == os.getpid() and second.previous["released"] is True
    second.release()


def test_the_lock_of_a_killed_process_is_taken_over(tmp_path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from tkam.train.lock import RunLock; "
            "lock = RunLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(600)",
            str(tmp_path / "run"),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(RunFolderBusy, match=f"pid {holder.pid}"):
        RunLock(tmp_path / "run").acquire()
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    lock = RunLock(tmp_path / "run").acquire()  # the kernel released the dead process's lock
    assert lock.previous["pid"] == holder.pid and "released" not in lock.previous
    lock.release()


def test_fit_warns_when_the_previous_writer_died(tmp_path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    record = {"pid": 999999, "host": "elsewhere", "started": "2026-01-01T00:00:00"}
    (run / ".lock").write_text(json.dumps(record) + "\n")
    with pytest.warns(UserWarning, match="pid 999999.*did not exit cleanly"):
        fit(tiny_config(train={"max_steps": 1}), run, progress=False)
    assert json.loads((run / ".lock").read_text())["released"] is True


def test_two_concurrent_trainings_into_one_folder(tmp_path) -> None:
    # The first run holds the folder; the second (another seed) is refused at once with exit
    # status 2, and the folder's files stay the first's: config, log, checkpoints. The first run
    # is long and stopped by SIGINT once the second was refused, so that it is surely running.
    first_config = tmp_path / "first.toml"
    first_config.write_text(
        dumps_toml(tiny_config(train={"max_steps": 100_000, "log_every": 10, "seed": 1}))
    )
    second_config = tmp_path / "second.toml"
    second_config.write_text(dumps_toml(tiny_config(train={"max_steps": 5, "seed": 2})))
    run = tmp_path / "run"
    first = subprocess.Popen(
        _train(first_config, run),
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for(lambda: (run / "config.toml").is_file(), first)
    second = subprocess.run(
        _train(second_config, run), env=_env(), capture_output=True, text=True, timeout=120
    )
    assert second.returncode == 2, second.stderr
    assert "Traceback" not in second.stderr
    assert f"in use by another training process (pid {first.pid}" in second.stderr
    assert first.poll() is None, "the first run should still be training"
    first.send_signal(signal.SIGINT)
    _, errors = first.communicate(timeout=300)
    assert first.returncode == 130, errors[-3000:]
    saved = tomllib.loads((run / "config.toml").read_text())
    assert saved["train"]["seed"] == 1 and saved["train"]["max_steps"] == 100_000
    steps = [int(row["Step"]) for row in csv.DictReader((run / "loss.csv").open())]
    assert steps[0] == 1 and all(step % 10 == 0 for step in steps[1:]), steps
    assert steps == sorted(set(steps))  # one writer: no interleaved rows
    for checkpoint in (run / "checkpoints").glob("step_*.safetensors"):
        recorded = tomllib.loads(read_metadata(checkpoint)["config"])
        assert recorded["train"]["seed"] == 1, checkpoint.name


def test_train_out_naming_a_file_is_refused(tmp_path) -> None:
    target = tmp_path / "file.txt"
    target.write_text("not a run")
    with pytest.raises(TrainingError, match="is not a folder"):
        fit(tiny_config(train={"max_steps": 1}), target, progress=False)
    assert target.read_text() == "not a run"


def test_overwrite_starts_afresh_and_keeps_foreign_files(tmp_path) -> None:
    run = tmp_path / "run"
    fit(tiny_config(train={"max_steps": 4, "seed": 3}), run, progress=False)
    (run / "notes.txt").write_text("mine")
    with pytest.raises(TrainingError, match="already holds a run.*--overwrite"):
        fit(tiny_config(train={"max_steps": 2}), run, progress=False)
    with pytest.raises(TrainingError, match="pick one"):
        fit(tiny_config(), run, progress=False, resume=True, overwrite=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the previous writer exited cleanly: no warning
        fit(tiny_config(train={"max_steps": 2, "seed": 4}), run, progress=False, overwrite=True)
    assert (run / "notes.txt").read_text() == "mine"
    rows = list(csv.DictReader((run / "loss.csv").open()))
    assert [int(row["Step"]) for row in rows] == [1, 2]
    newest = sorted((run / "checkpoints").glob("*"))[-1]
    assert newest.name == "step_00000002.safetensors"  # none of the first run's (step 4) left
    assert tomllib.loads((run / "config.toml").read_text())["train"]["seed"] == 4


# --- the machine's registry of running trainings (advice on threads) ---


def test_the_registry_counts_live_trainings_and_forgets_killed_ones(tmp_path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from tkam.train.lock import TrainingRegistry; "
            "registry = TrainingRegistry(sys.argv[1]); registry.enter(); "
            "print('in', flush=True); time.sleep(600)",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    assert holder.stdout.readline().strip() == "in"
    mine = TrainingRegistry(tmp_path)
    assert mine.enter() == [holder.pid]
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    again = TrainingRegistry(tmp_path)
    assert again.enter() == []  # the killed holder's file is gone
    assert sorted(p.name for p in tmp_path.iterdir()) == [str(os.getpid())]
    again.leave()
    mine.leave()
    assert list(tmp_path.iterdir()) == []


def test_advice_when_trainings_oversubscribe_the_cores(monkeypatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with pytest.warns(UserWarning, match=r"1 other tkam training.*pid 4242.*threads=1"):
            _advise_threads([4242])
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            _advise_threads([])  # alone
            monkeypatch.setenv("OMP_NUM_THREADS", "1")
            _advise_threads([4242])  # the user chose
    finally:
        torch.set_num_threads(previous)
