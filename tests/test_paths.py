"""tkam.paths: every name of a run folder, in one place."""

from __future__ import annotations

from tests.helpers import tiny_config
from tkam.paths import LOCK_NAME, MANIFEST_NAME, RunPaths, sample_grids, step_of
from tkam.train import fit


def test_the_names_of_a_run_folder(tmp_path) -> None:
    paths = RunPaths(tmp_path)
    assert paths.checkpoint(12) == tmp_path / "checkpoints" / "step_00000012.safetensors"
    assert paths.sample_grid(5) == tmp_path / "samples" / "step_000005.png"
    assert paths.sample_grid(5, ".txt") == tmp_path / "samples" / "step_000005.txt"
    assert (paths.manifest.name, paths.lock.name) == (MANIFEST_NAME, LOCK_NAME)
    assert paths.plots.folder == tmp_path / "plots" and paths.figures.folder == tmp_path
    assert [step_of(p) for p in (paths.checkpoint(7), paths.sample_grid(30))] == [7, 30]
    assert step_of("step_x.png") is None and step_of("model.safetensors") is None


def test_steps_order_checkpoints_and_sample_grids(tmp_path) -> None:
    paths = RunPaths(tmp_path)
    assert paths.checkpoint_files() == [] and sample_grids(paths.samples) == []
    for step in (9, 10, 100):
        for path in (paths.checkpoint(step), paths.sample_grid(step)):
            path.parent.mkdir(exist_ok=True)
            path.touch()
    (paths.samples / "step_9.png").touch()  # unpadded, as an older writer might name it
    (paths.samples / "notes.png").touch()
    assert [step_of(p) for p in paths.checkpoint_files()] == [100, 10, 9]
    assert [step_of(p) for p in sample_grids(paths.samples)] == [9, 9, 10, 100]


def test_run_files_name_everything_a_run_writes(tmp_path) -> None:
    root = tmp_path / "run"
    fit(tiny_config(train={"max_steps": 4, "log_every": 2}), root, progress=False)
    paths = RunPaths(root)
    written = {p for p in root.rglob("*") if p.is_file()} - {paths.lock, paths.manifest}
    assert set(paths.run_files()) == written
    figures = paths.figures
    for path in (paths.config, paths.loss_csv, paths.model, figures.prior, figures.losses):
        assert path in written, path
    assert figures.evolution in written and paths.sample_grid(4) in written
    assert paths.checkpoint(4) in written
