"""What a run folder holds and what the trainer may do to it (issue 24): the manifest and
``overwrite``, the model's identity, refused resumes, the config recorded as used, failures
named in one line."""

from __future__ import annotations

import csv
import json
import os
import tomllib
from dataclasses import replace

import pytest
import torch
from safetensors import SafetensorError

import tkam.train.checkpoint as checkpoint_module
import tkam.train.loop as loop_module
from tests.helpers import tiny_config
from tkam.config import ExperimentConfig
from tkam.manifest import MANIFEST_NAME, read_manifest
from tkam.train import CheckpointError, TrainingError, fit
from tkam.train.callbacks import Checkpoints, LossLog


def _with(config: ExperimentConfig, **train) -> ExperimentConfig:
    return replace(config, train=replace(config.train, **train))


def test_the_manifest_lists_every_file_the_run_wrote(tmp_path) -> None:
    run = tmp_path / "run"
    fit(tiny_config(), run, progress=False)
    listed = read_manifest(run)
    written = {
        p.relative_to(run).as_posix()
        for p in run.rglob("*")
        if p.is_file() and p.name not in (".lock", MANIFEST_NAME)
    }
    assert listed == written
    assert "checkpoints/step_00000008.safetensors" in listed and "config.toml" in listed


def test_overwrite_deletes_only_the_files_of_the_manifest(tmp_path) -> None:
    run = tmp_path / "run"
    fit(tiny_config(), run, progress=False)
    (run / "metrics.json").write_text("{}")  # an old evaluation, recorded as tkam's
    manifest = json.loads((run / MANIFEST_NAME).read_text())
    manifest["files"].append("metrics.json")
    (run / MANIFEST_NAME).write_text(json.dumps(manifest))
    others = [run / "checkpoints" / "other_tool.pt", run / "samples" / "my_photo.png"]
    others.append(run / "plots" / "paper_figure.pdf")
    for path in others:
        path.parent.mkdir(exist_ok=True)
        path.write_text("not tkam's")
    fit(_with(tiny_config(), max_steps=4), run, progress=False, overwrite=True)
    assert all(path.read_text() == "not tkam's" for path in others)
    assert not (run / "metrics.json").exists()  # the old scores do not sit beside a new model
    assert sorted(p.name for p in (run / "checkpoints").glob("step_*")) == [
        "step_00000001.safetensors",
        "step_00000004.safetensors",
    ]


def test_overwrite_refuses_files_tkam_did_not_write_naming_them(tmp_path) -> None:
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.toml").write_text("# another tool's config\n")
    (run / "checkpoints" / "step_00000005.safetensors").write_text("a run without a manifest")
    with pytest.raises(TrainingError, match=r"would have to delete config.toml, checkpoints"):
        fit(tiny_config(), run, progress=False, overwrite=True)
    assert (run / "config.toml").read_text() == "# another tool's config\n"
    with pytest.raises(TrainingError, match="already holds a run"):
        fit(tiny_config(), run, progress=False)


def test_a_fresh_run_refuses_to_overwrite_a_file_tkam_did_not_write(tmp_path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.toml").write_text("# another tool's config\n")
    with pytest.raises(TrainingError, match="tkam did not write: config.toml"):
        fit(tiny_config(), run, progress=False)
    assert (run / "config.toml").read_text() == "# another tool's config\n"


def test_a_resume_below_the_current_step_is_refused_and_changes_nothing(tmp_path) -> None:
    run = tmp_path / "run"
    fit(tiny_config(), run, progress=False)
    before = (run / "config.toml").read_bytes()
    with pytest.raises(TrainingError, match="train.max_steps = 4 is below step 8"):
        fit(_with(tiny_config(), max_steps=4), run, progress=False, resume=True)
    assert (run / "config.toml").read_bytes() == before


def test_resume_of_a_missing_folder_is_refused_without_creating_it(tmp_path) -> None:
    with pytest.raises(TrainingError, match="nothing to resume"):
        fit(tiny_config(), tmp_path / "missing", progress=False, resume=True)
    assert not (tmp_path / "missing").exists()


def test_a_failed_run_leaves_no_folder_holding_only_its_lock(tmp_path) -> None:
    bad = tiny_config(data={"name": "mnist", "root": str(tmp_path / "no-data")})
    with pytest.raises(Exception, match="not found"):
        fit(bad, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_a_resume_after_loss_csv_was_deleted_says_so(tmp_path) -> None:
    run = tmp_path / "run"
    fit(_with(tiny_config(), max_steps=4), run, progress=False)
    (run / "loss.csv").unlink()
    with pytest.warns(UserWarning, match="loss.csv is missing: the run resumes at step 4"):
        fit(tiny_config(), run, progress=False, resume=True)
    rows = list(csv.DictReader((run / "loss.csv").open()))
    assert [int(r["Step"]) for r in rows] == [8]


def test_a_relative_data_root_is_recorded_absolute(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = tiny_config(data={"root": "some/data"})  # digits are bundled: the root is unused
    fit(config, tmp_path / "run", progress=False)
    recorded = tomllib.loads((tmp_path / "run" / "config.toml").read_text())
    assert recorded["data"]["root"] == str(tmp_path / "some" / "data")


def test_a_batch_larger_than_the_training_set_is_recorded_as_used(tmp_path) -> None:
    config = _with(tiny_config(data={"num_train": 30}), batch_size=500, max_steps=2)
    with pytest.warns(UserWarning, match="train.batch_size = 500 is larger than the 30"):
        fit(config, tmp_path / "run", progress=False)
    recorded = tomllib.loads((tmp_path / "run" / "config.toml").read_text())
    assert recorded["train"]["batch_size"] == 30
    # The recorded config resumes: the same data give the same batch size.
    with pytest.warns(UserWarning, match="records batch_size = 30"):
        fit(_with(config, max_steps=3), tmp_path / "run", progress=False, resume=True)


def test_identical_seeded_runs_write_identical_model_bytes(tmp_path) -> None:
    fit(tiny_config(), tmp_path / "a", progress=False)
    fit(tiny_config(), tmp_path / "b", progress=False)
    a = (tmp_path / "a" / "model.safetensors").read_bytes()
    assert a == (tmp_path / "b" / "model.safetensors").read_bytes()
    size = int.from_bytes(a[:8], "little")
    header = json.loads(a[8 : 8 + size])
    assert list(header) == sorted(header)
    assert list(header["__metadata__"]) == sorted(header["__metadata__"])


def test_run_files_follow_the_umask(tmp_path) -> None:
    previous = os.umask(0o022)
    try:
        fit(_with(tiny_config(), max_steps=1), tmp_path / "run", progress=False)
    finally:
        os.umask(previous)
    for name in ("config.toml", "loss.csv", "model.safetensors", "evolution.gif"):
        assert (tmp_path / "run" / name).stat().st_mode & 0o777 == 0o644, name


def test_an_exploding_loss_fails_without_writing_a_model(tmp_path, monkeypatch) -> None:
    def explode(*args, **kwargs):
        output = original(*args, **kwargs)
        step = args[5]
        return output._replace(loss=output.loss * (1.0 if step < 3 else 1e4))

    original = loop_module.train_step
    monkeypatch.setattr(loop_module, "train_step", explode)
    with pytest.raises(TrainingError, match=r"the loss diverged.*times the first"):
        fit(tiny_config(), tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_a_model_the_updates_made_unusable_is_one_line(tmp_path) -> None:
    config = _with(tiny_config(), learning_rate=1e30)
    with pytest.raises(TrainingError, match=r"the updates diverged.*learning_rate = 1e\+30"):
        fit(config, tmp_path / "run", progress=False)


def test_a_full_disk_while_checkpointing_is_one_line(tmp_path, monkeypatch) -> None:
    def full(*args, **kwargs):
        raise SafetensorError("No space left on device (os error 28)")

    monkeypatch.setattr(checkpoint_module, "save_file", full)
    with pytest.raises(CheckpointError, match=r"cannot write .*No space left.*--resume"):
        fit(tiny_config(), tmp_path / "run", progress=False, callbacks=[LossLog(), Checkpoints()])
    assert not list((tmp_path / "run" / "checkpoints").glob("*"))


def test_a_model_too_large_for_memory_is_one_line(tmp_path, monkeypatch) -> None:
    def huge(*args, **kwargs):
        raise RuntimeError(
            "[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: "
            "you tried to allocate 80000000000 bytes."
        )

    monkeypatch.setattr(loop_module, "train_step", huge)
    with pytest.raises(TrainingError, match=r"does not fit in memory.*prior.widths = \[3, 7\]"):
        fit(tiny_config(), tmp_path / "run", progress=False)


def test_more_threads_than_cores_is_a_warning(tmp_path) -> None:
    config = _with(tiny_config(), threads=len(os.sched_getaffinity(0)) + 1, max_steps=1)
    with pytest.warns(UserWarning, match="more than the .* cores"):
        fit(config, tmp_path / "run", progress=False)
    assert torch.get_num_threads() >= 1
