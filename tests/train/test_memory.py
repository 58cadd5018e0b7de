"""The training-memory estimate (tkam.train.memory): a model far too large is refused up front, in
one line naming the widths and the memory, and no packaged config comes near the limit."""

from __future__ import annotations

import math
import time

import pytest

from tests.helpers import PACKAGED_SHAPES, tiny_config
from tkam import argtypes
from tkam.config import load_config, packaged_configs
from tkam.train import TrainingError, fit
from tkam.train import loop as loop_module
from tkam.train.memory import training_memory

SHAPES = PACKAGED_SHAPES


def _never_built(*args, **kwargs):
    raise AssertionError("the model was built")


@pytest.mark.parametrize(
    ("prior", "generator", "largest"),
    [
        ([3, 100_000], [100_000, 16], "the prior's grid update"),
        ([3, 7], [7, 100_000_000], "the generator's grid update"),
    ],
    ids=["huge-prior", "huge-generator"],
)
def test_a_model_too_large_for_memory_is_refused_before_it_is_built(
    prior, generator, largest, tmp_path, monkeypatch
) -> None:
    # Before, [20, 100000] failed inside the allocator after the model was built; now the
    # estimate refuses it at once, naming both widths, the memory and the largest part.
    monkeypatch.setattr(loop_module, "build_model", _never_built)
    config = tiny_config(prior={"widths": prior}, generator={"widths": generator})
    started = time.monotonic()
    with pytest.raises(TrainingError) as info:
        fit(config, tmp_path / "run", progress=False)
    assert time.monotonic() - started < 60
    message = str(info.value)
    assert "\n" not in message
    assert f"the model (prior.widths = {prior}, generator.widths = {generator})" in message
    assert "and one training update need about" in message
    assert "of memory, more than this machine's" in message
    assert f"make the widths smaller; the largest part is {largest}" in message
    assert not (tmp_path / "run").exists()  # the folder it created is removed again


def test_the_limit_is_the_machine_memory(tmp_path, monkeypatch) -> None:
    # The tiny model needs some 100 KiB: refused on a machine of 64 KiB, trained on one of 1 TiB.
    config = tiny_config(train={"max_steps": 1})
    needed, _ = training_memory(config, (1, 8, 8))
    assert 2**16 < needed < 2**30
    monkeypatch.setattr(argtypes, "_physical_memory", lambda: 2**16)
    with pytest.raises(TrainingError, match=r"prior.widths = \[3, 7\].*this machine's 0.0 GiB"):
        fit(config, tmp_path / "small", progress=False)
    monkeypatch.setattr(argtypes, "_physical_memory", lambda: 2**40)
    fit(config, tmp_path / "large", progress=False)
    assert (tmp_path / "large" / "model.safetensors").is_file()


def test_the_estimate_grows_with_the_terms_it_names() -> None:
    base, _ = training_memory(tiny_config(), (1, 8, 8))
    wider, largest = training_memory(
        tiny_config(prior={"widths": [3, 700]}, generator={"widths": [700, 16]}), (1, 8, 8)
    )
    assert wider > 100 * base and largest.what.startswith("the prior's grid update")
    # P x (n Q) x Q floats, three times (targets, the solver's copy, its solution).
    assert largest.nbytes == 3 * 4 * 3 * (20 * 700) * 700
    # Without grid updates the refit is gone and the largest part is smaller.
    fixed, largest = training_memory(
        tiny_config(
            prior={"widths": [3, 700], "update_grid": False},
            generator={"widths": [700, 16], "update_grid": False},
        ),
        (1, 8, 8),
    )
    assert fixed < wider and not largest.what.startswith("the prior's grid update")


@pytest.mark.parametrize("name", packaged_configs())
def test_no_packaged_config_comes_near_the_limit(name) -> None:
    config = load_config(name)
    shape = SHAPES.get(config.data.name, (config.data.vocab_size, config.data.sequence_length))
    needed, largest = training_memory(config, shape)
    assert 0 < largest.nbytes <= needed < 2 * 2**30, (name, needed, largest)
    assert math.isfinite(needed / 2**30)
