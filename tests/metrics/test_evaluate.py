"""``tkam evaluate`` end to end on a tiny trained run."""

from __future__ import annotations

import json
import math

import pytest

from tests.helpers import quick_evaluation, tiny_config
from tkam.cli import main
from tkam.data.darcy import generate_darcy, generation_attributes, write_darcy
from tkam.metrics import AutoencoderRecipe, ClassifierRecipe, EvaluationOptions, evaluate_run
from tkam.train import fit

KEYS = (
    "fid_infinity",
    "kid_infinity",
    "fid_values",
    "kid_values",
    "sample_sizes",
    "fid_at_n",
    "feature_network",
    "log_likelihood_nats_per_dim",
    "log_likelihood_standard_error",
    "num_test",
)


def test_evaluate_cli_writes_finite_metrics(tmp_path, capsys):
    run = tmp_path / "run"
    fit(tiny_config(), run, progress=False)
    code = main(
        [
            "evaluate",
            str(run),
            "--num",
            "60",
            "--importance-samples",
            "50",
            "--feature-cache",
            str(tmp_path / "cache"),
            "--feature-steps",
            "5",
            "--kid-subsets",
            "10",
        ]
    )
    assert code == 0
    metrics = json.loads((run / "metrics.json").read_text())
    for key in KEYS:
        assert key in metrics, key
    assert metrics["sample_sizes"] == [12, 24, 36, 48, 60]
    assert metrics["num_test"] == 20
    # digits have labels: the features come from tkam's classifier (5 steps here).
    assert metrics["feature_network"].startswith("tkam-classifier-digits-1x8x8-v1-")
    assert 0.0 <= metrics["feature_network_accuracy"] <= 1.0
    for key in ("fid_infinity", "kid_infinity", "fid_at_n", "log_likelihood_nats_per_dim"):
        assert math.isfinite(metrics[key]), key
    assert metrics["log_likelihood_standard_error"] >= 0
    assert all(math.isfinite(v) and v >= 0 for v in metrics["fid_values"])
    assert list((tmp_path / "cache" / "features").glob("classifier-digits-1x8x8-*.safetensors"))
    out = capsys.readouterr().out
    assert "FID-infinity" in out and "metrics written to" in out


def test_evaluate_text_run_skips_fid_with_a_note(tmp_path):
    words = "the cat sat on a mat and dog ran far".split()
    lines = [" ".join(words[(i + j) % 10] for j in range(5)) for i in range(40)]
    (tmp_path / "ptb.train.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "ptb.test.txt").write_text("\n".join(lines[:5]) + "\n")
    config = tiny_config(
        generator={"kind": "sequence", "d_model": 16, "widths": [7], "update_grid": False},
        data={
            "name": "ptb",
            "root": str(tmp_path),
            "vocab_size": 8,
            "sequence_length": 6,
            "num_train": 30,
            "num_test": 5,
        },
    )
    fit(config, tmp_path / "run", progress=False)
    metrics = evaluate_run(tmp_path / "run", EvaluationOptions(20, 10), log=None)
    assert metrics["fid_infinity"] is None and metrics["feature_network"] is None
    assert any("FID/KID skipped" in note for note in metrics["notes"])
    assert math.isfinite(metrics["log_likelihood_nats_per_dim"])
    assert metrics["log_likelihood_normalised"] is False


def test_evaluate_darcy_run_reports_field_errors(tmp_path):
    fields = generate_darcy(30, resolution=8, seed=0)
    path = write_darcy(tmp_path / "darcy.h5", fields, generation_attributes(30, 8, 0, 3))
    config = tiny_config(data={"name": "darcy", "root": str(path), "num_train": 20, "num_test": 10})
    fit(config, tmp_path / "run", progress=False)
    options = quick_evaluation(tmp_path / "cache")
    metrics = evaluate_run(tmp_path / "run", options, log=None)
    for key in ("darcy_mean_field_error", "darcy_variance_error", "darcy_power_spectrum_error"):
        assert math.isfinite(metrics[key]) and metrics[key] >= 0, key
    assert metrics["feature_network"].startswith("tkam-autoencoder-darcy-1x8x8-")
    assert metrics["log_likelihood_normalised"] is True


def test_evaluate_adds_the_vae_bound_and_the_thermodynamic_estimate(tmp_path):
    common = {"feature_cache": tmp_path / "cache", "kid_num_subsets": 5}
    common["feature_recipe"] = AutoencoderRecipe(steps=2)
    common["classifier_recipe"] = ClassifierRecipe(steps=2)
    vae = tmp_path / "vae"
    fit(tiny_config(model={"kind": "vae"}), vae, progress=False)
    metrics = evaluate_run(vae, EvaluationOptions(20, 10, **common), log=None)
    assert math.isfinite(metrics["iwae_bound_nats_per_dim"])
    assert "K=10 encoder samples" in metrics["iwae_bound_note"]
    assert "thermodynamic_log_likelihood_nats_per_dim" not in metrics

    thermo = tmp_path / "thermo"
    config = tiny_config(
        thermodynamic={"num_temps": 3, "p_start": 2.0, "p_end": 2.0},
        posterior={"sampler": "ula", "steps": 4, "step_size": 0.01},
    )
    fit(config, thermo, progress=False)
    options = EvaluationOptions(20, 10, thermodynamic_items=6, thermodynamic_chains=2, **common)
    metrics = evaluate_run(thermo, options, log=None)
    assert metrics["thermodynamic_num_test"] == 6
    assert math.isfinite(metrics["thermodynamic_log_likelihood_nats_per_dim"])
    assert metrics["thermodynamic_log_likelihood_standard_error"] >= 0
    assert "N_t=3" in metrics["thermodynamic_log_likelihood_note"]
    assert "iwae_bound_nats_per_dim" not in metrics


def test_present_inception_weights_are_found_and_need_torchvision(tmp_path, monkeypatch):
    from tkam.metrics import features, present_inception_weights

    cache = tmp_path / "cache"
    assert present_inception_weights(cache) is None
    (cache / "features").mkdir(parents=True)
    weights = cache / "features" / "inception_v3.pth"
    weights.write_bytes(b"not a state dict")
    assert present_inception_weights(cache) == weights

    run = tmp_path / "run"
    fit(tiny_config(), run, progress=False)
    common = {
        "feature_recipe": AutoencoderRecipe(steps=2),
        "classifier_recipe": ClassifierRecipe(steps=2),
        "kid_num_subsets": 5,
        "feature_cache": cache,
    }
    # Without torchvision the present file cannot be used: tkam's features, with a note.
    monkeypatch.setattr("tkam.metrics.evaluate.torchvision_available", lambda: False)
    metrics = evaluate_run(run, EvaluationOptions(20, 10, **common), log=None)
    assert metrics["feature_network"].startswith("tkam-classifier-")
    assert any("inception_v3.pth is present" in note for note in metrics["notes"])
    # With torchvision the present file is the default, and a bad one is a clear error.
    monkeypatch.setattr("tkam.metrics.evaluate.torchvision_available", lambda: True)
    calls = []

    def fake_inception(path):
        calls.append(path)
        raise features.FeatureError(f"--inception {path}: not a torchvision state dict")

    monkeypatch.setattr("tkam.metrics.evaluate.inception_features", fake_inception)
    with pytest.raises(features.FeatureError, match="not a torchvision"):
        evaluate_run(run, EvaluationOptions(20, 10, **common), log=None)
    assert calls == [weights]
    # An explicit choice of tkam's features ignores the file.
    options = EvaluationOptions(20, 10, features="autoencoder", **common)
    metrics = evaluate_run(run, options, log=None)
    assert metrics["feature_network"].startswith("tkam-autoencoder-") and not metrics["notes"]
    with pytest.raises(ValueError, match="features must be"):
        evaluate_run(run, EvaluationOptions(20, 10, features="lenet", **common), log=None)


def test_evaluate_reports_class_entropy_and_scores_against_held_out_items(tmp_path):
    run = tmp_path / "run"
    fit(tiny_config(), run, progress=False)
    common = dict(
        num_generated=60,
        importance_samples=20,
        feature_cache=tmp_path / "cache",
        classifier_recipe=ClassifierRecipe(steps=5),
        kid_num_subsets=5,
    )
    train = evaluate_run(run, EvaluationOptions(**common), log=None)
    held = evaluate_run(run, EvaluationOptions(real="held-out", **common), log=None)
    for metrics in (train, held):
        assert 0.0 <= metrics["class_entropy"] <= math.log(10) + 1e-9
        assert metrics["class_entropy_max"] == pytest.approx(math.log(10))
        assert sum(metrics["class_counts"]) == 60
    # The same generated images and classifier: only the real set differs.
    assert train["class_counts"] == held["class_counts"]
    assert train["real_set"].endswith("training images drawn without replacement")
    assert held["real_set"].startswith("20 held-out")
    assert held["fid_infinity"] != train["fid_infinity"]
    with pytest.raises(ValueError, match="real must be"):
        evaluate_run(run, EvaluationOptions(real="test", **common), log=None)
    common["importance_samples"] = 0
    samples_only = evaluate_run(run, EvaluationOptions(real="held-out", **common), log=None)
    assert samples_only["log_likelihood_nats_per_dim"] is None
    assert "log-likelihood skipped: --importance-samples 0" in samples_only["notes"]
    assert samples_only["fid_infinity"] == held["fid_infinity"]


def test_class_entropy_of_known_histograms():
    import torch

    from tkam.metrics.features import class_entropy

    even, counts = class_entropy(torch.arange(10).repeat(3), 10)
    assert even == pytest.approx(math.log(10)) and counts == [3] * 10
    one, _ = class_entropy(torch.full((50,), 4), 10)
    assert one == 0.0
    half, _ = class_entropy(torch.tensor([0, 1] * 5), 10)
    assert half == pytest.approx(math.log(2))


def test_the_command_line_sets_the_evaluation_options(tmp_path):
    from tkam.cli import build_parser
    from tkam.metrics.commands import _options

    argv = ["evaluate", str(tmp_path), "--num", "60", "--importance-samples", "7"]
    argv += ["--sample-sizes", "40", "20", "--seed", "3", "--features", "autoencoder"]
    argv += ["--feature-cache", str(tmp_path / "cache"), "--feature-steps", "9"]
    argv += ["--kid-subsets", "4", "--ti-items", "5", "--ti-chains", "2"]
    argv += ["--data-root", str(tmp_path), "--real", "held-out"]
    options = _options(build_parser().parse_args(argv))
    assert options == EvaluationOptions(
        num_generated=60,
        importance_samples=7,
        sample_sizes=[40, 20],
        seed=3,
        features="autoencoder",
        feature_cache=tmp_path / "cache",
        feature_recipe=AutoencoderRecipe(steps=9),
        classifier_recipe=ClassifierRecipe(steps=9),
        kid_num_subsets=4,
        thermodynamic_items=5,
        thermodynamic_chains=2,
        data_root=tmp_path,
        real="held-out",
    )
    defaults = _options(build_parser().parse_args(["evaluate", str(tmp_path)]))
    assert defaults.num_generated == EvaluationOptions().num_generated
    assert defaults.feature_recipe == AutoencoderRecipe()
