"""Command-line smoke tests: a tiny model trained end to end, sampled and plotted."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from tests.helpers import tiny_config
from tkam.cli import main
from tkam.config import dumps_toml
from tkam.prior.learned import DIVERGENCE_KEYS
from tkam.train import fit


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    config_path = folder / "tiny.toml"
    config_path.write_text(dumps_toml(tiny_config()))
    run = folder / "run"
    code = main(
        [
            "train",
            str(config_path),
            "--out",
            str(run),
            "--no-progress",
            "--set",
            "train.max_steps=5",
            "--set",
            "train.seed=3",
        ]
    )
    assert code == 0
    return run


def test_train_writes_resolved_config_with_overrides(trained_run) -> None:
    text = (trained_run / "config.toml").read_text()
    assert "max_steps = 5" in text and "seed = 3" in text
    assert (trained_run / "model.safetensors").is_file()


def test_sample_npz_with_latents(trained_run, tmp_path) -> None:
    out = tmp_path / "s.npz"
    assert main(["sample", str(trained_run), "--num", "12", "--out", str(out), "--latent"]) == 0
    data = np.load(out)
    assert data["samples"].shape == (12, 1, 8, 8) and data["samples"].dtype == np.float32
    assert 0.0 <= data["samples"].min() and data["samples"].max() <= 1.0
    assert data["z"].shape == (12, 7, 3)


def test_sample_png(trained_run, tmp_path) -> None:
    out = tmp_path / "grid.png"
    assert main(["sample", str(trained_run), "--num", "9", "--out", str(out)]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_plot_prior_with_export(trained_run, tmp_path) -> None:
    png, npz = tmp_path / "prior.png", tmp_path / "prior.npz"
    code = main(["plot-prior", str(trained_run), "--out", str(png), "--export", str(npz)])
    assert code == 0 and png.read_bytes()[:4] == b"\x89PNG"
    data = np.load(npz)
    assert data["nodes"].shape == (3, 40)
    assert data["density"].shape == (7, 3, 40) and data["cdf"].shape == (7, 3, 40)
    assert np.allclose(data["cdf"][..., 0], 0) and np.allclose(data["cdf"][..., -1], 1)


INSPECT_KEYS = (*DIVERGENCE_KEYS, "h_effective_dimension", "h_leading_share")


def test_inspect_reports_what_the_prior_learned(trained_run, capsys) -> None:
    argv = ["inspect", str(trained_run), "--samples", "500", "--seed", "1"]
    assert main([*argv, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    for key in INSPECT_KEYS:
        assert math.isfinite(report[key]), key
    assert report["num_components"] == 21  # Q = 7 x P = 3
    assert 0 <= report["tv_median"] <= report["tv_p90"] <= report["tv_max"] <= 1
    assert 0 <= report["kl_median"] <= report["kl_p90"]
    assert 1 <= report["h_effective_dimension"] <= report["h_width"] == 7
    largest = report["largest_tv_components"]
    assert len(largest) == 5 and largest[0]["tv"] == report["tv_max"]
    assert [row["tv"] for row in largest] == sorted((row["tv"] for row in largest), reverse=True)
    # The same draws again, as a table.
    assert main(argv) == 0
    table = capsys.readouterr().out
    assert "TV from pi_0" in table and "KL from pi_0" in table
    assert f"{report['h_effective_dimension']} of 7 (99 % of the variance of 500" in table
    assert f"({largest[0]['q']}, {largest[0]['p']})" in table


def test_inspect_a_prior_without_components(tmp_path, capsys) -> None:
    run = tmp_path / "vae"
    fit(tiny_config(model={"kind": "vae"}, train={"max_steps": 2}), run, progress=False)
    assert main(["inspect", str(run), "--json", "--samples", "300"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["tv_median"] is None and report["num_components"] is None
    assert report["h_effective_dimension"] == 7 and report["largest_tv_components"] == []
    assert main(["inspect", str(run), "--samples", "300"]) == 0
    assert "no univariate components" in capsys.readouterr().out


def test_inspect_a_missing_run_is_one_line(tmp_path, capsys) -> None:
    code = main(["inspect", str(tmp_path / "missing"), "--json"])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err
    assert lines[0] == f"tkam: error: {tmp_path / 'missing'} is not a run folder: " + (
        f"{tmp_path / 'missing' / 'config.toml'} is missing"
    )


def test_plot_writes_every_figure(trained_run, tmp_path, capsys) -> None:
    from PIL import Image

    out = tmp_path / "figures"
    assert main(["plot", str(trained_run), "--out", str(out), "--num", "4"]) == 0
    names = {"prior.png", "prior_grid.png", "loss.png", "samples.png", "evolution.gif"}
    assert {p.name for p in out.iterdir()} == names
    for name in names - {"evolution.gif"}:
        assert (out / name).read_bytes()[:4] == b"\x89PNG", name
    # One GIF frame per sample grid saved during training (steps 1 and 5 of this run).
    gif = Image.open(out / "evolution.gif")
    assert gif.format == "GIF" and gif.n_frames == len(
        list((trained_run / "samples").glob("*.png"))
    )
    assert (trained_run / "evolution.gif").is_file()  # tkam train writes one as well
    # A subset, into the run's own plots folder by default.
    assert main(["plot", str(trained_run), "losses"]) == 0
    assert "wrote" in capsys.readouterr().out and (trained_run / "plots" / "loss.png").is_file()
    assert main(["plot", str(trained_run), "prior_grid"]) == 2
    assert "unknown figure 'prior_grid'" in capsys.readouterr().err


def test_configs_lists_packaged(capsys) -> None:
    assert main(["configs"]) == 0
    listed = capsys.readouterr().out
    for name in ("digits", "mnist", "fmnist"):
        assert name in listed
    kinds = {line.split()[0]: line.split()[2] for line in listed.splitlines()[1:]}
    assert kinds["digits"] == "univariate" and kinds["svhn"] == "mixture"
    # The Pang-style configs have a deep KAN energy prior (widths 100-200-200-1).
    assert all(kinds[f"{data}-pang"] == "deep" for data in ("svhn", "cifar10", "celeba"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "prior.bassis=rbf"], "unknown key 'prior.bassis'"),
        (["--set", "train.batch_size=ten"], "train.batch_size: expected int"),
        (
            ["--set", "data.name=mnist", "--set", "data.root=/nonexistent/mnist"],
            "/nonexistent/mnist",
        ),
    ],
)
def test_bad_input_gives_a_clear_error(tmp_path, capsys, args, message) -> None:
    config_path = tmp_path / "tiny.toml"
    config_path.write_text(dumps_toml(tiny_config()))
    code = main(["train", str(config_path), "--out", str(tmp_path / "r"), "--no-progress", *args])
    assert code == 2
    err = capsys.readouterr().err
    assert message in err
    if "key" in message:
        assert str(config_path) in err


def test_module_entry_point_runs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tkam", "configs"], capture_output=True, text=True, check=True
    )
    assert "digits" in done.stdout
