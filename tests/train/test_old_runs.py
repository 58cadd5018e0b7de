"""Run folders written by an older tkam still load and resume: their files hold the KAN layers'
``frequencies`` buffers (removed: never read) and configs with ``train.sample_every`` (removed:
never read)."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from tests.helpers import tiny_config
from tkam.config import dumps_toml, load_config
from tkam.runs import load_run
from tkam.train import fit
from tkam.train.checkpoint import atomic_save


def _old_config(text: str) -> str:
    """A config TOML as an older tkam wrote it: with ``sample_every`` in ``[train]``."""
    return re.sub(r"(?m)^(checkpoint_every = .*)$", r"\1\nsample_every = 0", text, count=1)


def _old_file(path: Path, prefix: str) -> None:
    """Rewrite a safetensors file as an older tkam wrote it: a ``frequencies`` buffer beside
    every KAN layer's ``coef`` (empty for this RBF model) and the old config in its metadata."""
    tensors = load_file(str(path))
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    layers = [name[: -len("coef")] for name in tensors if name.endswith(".coef")]
    assert layers and all(name.startswith(prefix) for name in layers)
    tensors.update({layer + "frequencies": torch.empty(0) for layer in layers})
    metadata["config"] = _old_config(metadata["config"])
    atomic_save(tensors, path, metadata)


def _as_written_before(root: Path) -> None:
    (root / "config.toml").write_text(_old_config((root / "config.toml").read_text()))
    _old_file(root / "model.safetensors", "")
    for checkpoint in (root / "checkpoints").glob("step_*.safetensors"):
        _old_file(checkpoint, "model/")


def test_an_old_run_loads_and_resumes_as_a_current_one(tmp_path) -> None:
    config = tiny_config(train={"max_steps": 4, "log_every": 2})
    for name in ("old", "current"):
        fit(config, tmp_path / name, progress=False)
    old, current = tmp_path / "old", tmp_path / "current"
    _as_written_before(old)
    assert "sample_every = 0" in (old / "config.toml").read_text()
    assert any(name.endswith("frequencies") for name in load_file(str(old / "model.safetensors")))

    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # the old default loads without a word
        loaded_config, model = load_run(old)
    assert loaded_config == config and "sample_every" not in dumps_toml(loaded_config)
    expected = load_file(str(current / "model.safetensors"))
    assert model.state_dict().keys() == expected.keys()
    assert all(torch.equal(value, expected[name]) for name, value in model.state_dict().items())

    for root in (old, current):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            longer = load_config(root / "config.toml", ["train.max_steps=6"])
            fit(longer, root, resume=True, progress=False)
        deprecated = [w for w in caught if issubclass(w.category, FutureWarning)]
        assert not deprecated  # the old default 0: nothing to warn about
    resumed_old = load_file(str(old / "model.safetensors"))
    resumed_current = load_file(str(current / "model.safetensors"))
    assert resumed_old.keys() == resumed_current.keys()
    assert not any(name.endswith("frequencies") for name in resumed_old)
    for name, value in resumed_current.items():
        assert torch.equal(resumed_old[name], value), name
