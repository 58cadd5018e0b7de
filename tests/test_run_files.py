"""What commands that read a run say about the model they used (issue 24): its step and hash in
every derived file, a warning for a model older than the run's newest checkpoint, one line for a
corrupt model, and the checks of ``tkam evaluate`` before its work."""

from __future__ import annotations

import argparse
import json
import shutil

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from tests.helpers import quick_evaluation, tiny_config
from tkam.build import build_model
from tkam.cli import main
from tkam.config import ConfigError
from tkam.files import file_sha256
from tkam.manifest import read_manifest
from tkam.metrics import evaluate_run
from tkam.runs import load_run, save_run
from tkam.train import fit
from tkam.train.checkpoint import read_metadata
from tkam.train.lock import RunLock


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run-files") / "run"
    fit(tiny_config(), folder, progress=False)
    return folder


def _copy(run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    return copy


def test_sample_names_the_model_and_records_it_in_the_png(run, tmp_path, capsys) -> None:
    out = tmp_path / "grid.png"
    assert main(["sample", str(run), "--num", "4", "--out", str(out)]) == 0
    digest = file_sha256(run / "model.safetensors")
    assert f"(step 8, sha256 {digest[:12]})" in capsys.readouterr().out
    text = Image.open(out).text
    assert text["tkam model step"] == "8" and text["tkam model sha256"] == digest


def test_plot_records_its_figures_and_their_model(run, tmp_path, capsys) -> None:
    copy = _copy(run, tmp_path)
    assert main(["plot", str(copy), "prior", "losses"]) == 0
    assert {"plots/prior.png", "plots/prior_grid.png", "plots/loss.png"} <= read_manifest(copy)
    digest = file_sha256(copy / "model.safetensors")
    for name in ("prior.png", "prior_grid.png", "loss.png"):
        assert Image.open(copy / "plots" / name).text["tkam model sha256"] == digest
    assert "figures of model" in capsys.readouterr().out
    # The figures of a finished run name the model too.
    assert Image.open(copy / "prior.png").text["tkam model step"] == "8"


def test_a_model_older_than_the_newest_checkpoint_is_a_warning(run, tmp_path, capsys) -> None:
    copy = _copy(run, tmp_path)
    newest = copy / "checkpoints" / "step_00000008.safetensors"
    shutil.copy(newest, copy / "checkpoints" / "step_00000012.safetensors")  # a resume, stopped
    for argv in (
        ["sample", str(copy), "--num", "4", "--out", str(tmp_path / "s.npz")],
        ["plot", str(copy), "prior"],
    ):
        assert main(argv) == 0
        err = capsys.readouterr().err
        assert err.startswith("tkam: warning: ") and "newer checkpoint (step 12)" in err
        assert "uses the model of step 8" in err and ".py:" not in err  # no file and line


def test_evaluate_records_the_model_and_warns_about_an_older_one(run, tmp_path) -> None:
    copy = _copy(run, tmp_path)
    shutil.copy(
        copy / "checkpoints" / "step_00000008.safetensors",
        copy / "checkpoints" / "step_00000012.safetensors",
    )
    with pytest.warns(UserWarning, match="newer checkpoint"):
        options = quick_evaluation(tmp_path / "cache", features="autoencoder")
        metrics = evaluate_run(copy, options, log=None)
    assert metrics["model"] == {
        "path": str(copy / "model.safetensors"),
        "step": 8,
        "sha256": file_sha256(copy / "model.safetensors"),
    }
    assert metrics["small_sample_sizes"] == [4, 8, 12, 16, 20]


def test_missing_labels_are_a_warning_and_recorded(run, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr("tkam.metrics.evaluate.training_labels", lambda *args: None)
    with pytest.warns(UserWarning, match="class labels of digits were not found"):
        options = quick_evaluation(tmp_path / "cache")
        metrics = evaluate_run(run, options, log=None)
    assert metrics["feature_network"].startswith("tkam-autoencoder-")
    assert "not comparable" in metrics["feature_fallback"]
    assert any("labels of digits" in note for note in metrics["notes"])


def test_evaluate_refuses_too_few_images_per_sample_size(run, capsys) -> None:
    assert main(["evaluate", str(run), "--num", "10"]) == 2
    err = capsys.readouterr().err
    assert "at least 10 images per sample size" in err and "2, 4, 6, 8, 10" in err


def test_evaluate_checks_its_output_before_the_work(run, monkeypatch, capsys) -> None:
    def refuse(*suffixes):
        def parse(text):
            raise argparse.ArgumentTypeError(f"cannot write {text}: read-only")

        return parse

    def never(*args, **kwargs):
        raise AssertionError("evaluated before the output was checked")

    monkeypatch.setattr("tkam.metrics.commands.output_file", refuse)
    monkeypatch.setattr("tkam.metrics.commands.evaluate_run", never)
    assert main(["evaluate", str(run), "--num", "50"]) == 2
    assert "read-only; pass --out PATH" in capsys.readouterr().err


def test_corrupt_weights_are_one_line_for_every_command(run, tmp_path, capsys) -> None:
    copy = _copy(run, tmp_path)
    path = copy / "model.safetensors"
    tensors = load_file(str(path))
    name = next(key for key, value in tensors.items() if value.is_floating_point())
    tensors[name] = torch.full_like(tensors[name], float("nan"))
    save_file(tensors, str(path), read_metadata(path))
    for argv in (
        ["sample", str(copy), "--num", "4", "--out", str(tmp_path / "s.png")],
        ["plot", str(copy)],
        ["plot-prior", str(copy), "--out", str(tmp_path / "p.png")],
    ):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("tkam: error: ") and err.count("\n") == 1, err
        assert "non-finite values" in err and "Traceback" not in err


def test_sample_of_a_run_still_training_says_so(tmp_path, capsys) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "config.toml").write_text("")
    with RunLock(folder):
        assert main(["sample", str(folder), "--num", "2", "--out", str(tmp_path / "s.npz")]) == 2
    err = capsys.readouterr().err
    assert "still training (pid" in err and "--resume" not in err


def test_version(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("tkam ")


def test_metrics_json_joins_the_manifest(run, tmp_path) -> None:
    copy = _copy(run, tmp_path)
    argv = ["evaluate", str(copy), "--num", "50", "--importance-samples", "0"]
    argv += ["--features", "autoencoder", "--feature-steps", "2", "--kid-subsets", "5"]
    argv += ["--feature-cache", str(tmp_path / "cache")]
    assert main(argv) == 0
    assert "metrics.json" in read_manifest(copy)
    metrics = json.loads((copy / "metrics.json").read_text())
    assert metrics["model"]["step"] == 8


def test_a_model_trained_by_hand_saved_as_a_run(tmp_path, capsys) -> None:
    config = tiny_config()
    model = build_model(config, (1, 8, 8))
    save_run(model, config, tmp_path / "mine", step=3)
    _, loaded = load_run(tmp_path / "mine")
    for name, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name
    out = tmp_path / "s.png"
    assert main(["sample", str(tmp_path / "mine"), "--num", "4", "--out", str(out)]) == 0
    assert "(step 3, sha256" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="already holds"):
        save_run(model, config, tmp_path / "mine")
