"""The Darcy file (:mod:`tkam.data.darcy.files`): the HDF5 writer (atomic), the loader's split and
global min-max scaling, its errors, the cheap check ``tkam data list`` runs, and a training run on
the fields (maths 6, departures A14)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from tests.data.helpers import cut_in_half, load_error, png_bytes, random_bytes, smoke_fit
from tkam.config import DataConfig
from tkam.data import DataError, load_dataset
from tkam.data.darcy.files import (
    DARCY,
    check_darcy,
    inspect_darcy,
    min_max_scale,
    missing_darcy,
    write_darcy,
)
from tkam.data.darcy.generate import generate_darcy, generation_attributes


def test_loader_splits_and_scales_globally(darcy_file: Path) -> None:
    config = DataConfig(name="darcy", root=str(darcy_file), num_train=20, num_test=10)
    data = load_dataset(config)
    assert data.name == "darcy" and data.image_shape == (1, 16, 16)
    assert data.train.shape == (20, 1, 16, 16) and data.test.shape == (10, 1, 16, 16)
    assert data.train.dtype == torch.float32
    with h5py.File(darcy_file, "r") as handle:
        raw = handle["solution"][:30].astype(np.float64)
    scaled = (raw - raw.min()) / (raw.max() - raw.min())  # over training and test fields
    torch.testing.assert_close(data.train, torch.from_numpy(scaled[:20]).float())
    torch.testing.assert_close(data.test, torch.from_numpy(scaled[20:]).float())
    both = torch.cat([data.train, data.test])
    assert float(both.min()) == 0.0 and float(both.max()) == 1.0
    # A folder holding darcy_32.h5 is a root too.
    folder = load_dataset(
        DataConfig(name="darcy", root=str(darcy_file.parent), num_train=20, num_test=10)
    )
    torch.testing.assert_close(folder.train, data.train)


def test_loader_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "fields.h5"
    with pytest.raises(DataError, match="tkam data darcy") as info:
        load_dataset(DataConfig(name="darcy", root=str(missing)))
    assert str(missing) in str(info.value)

    without = tmp_path / "without.h5"
    with h5py.File(without, "w") as handle:
        handle["coefficient"] = np.ones((4, 1, 8, 8), dtype=np.float32)
    with pytest.raises(DataError, match="'solution'.*coefficient") as info:
        load_dataset(DataConfig(name="darcy", root=str(without), num_train=2, num_test=1))
    assert str(without) in str(info.value)

    shaped = tmp_path / "shaped.h5"
    with h5py.File(shaped, "w") as handle:
        handle["solution"] = np.ones((4, 3, 8, 8), dtype=np.float32)
    with pytest.raises(DataError, match=r"\(4, 3, 8, 8\)"):
        load_dataset(DataConfig(name="darcy", root=str(shaped), num_train=2, num_test=1))

    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"not an HDF5 file at all" * 100)
    with pytest.raises(DataError, match="not an HDF5 file") as info:
        load_dataset(DataConfig(name="darcy", root=str(garbage), num_train=2, num_test=1))
    assert str(garbage) in str(info.value)

    nan = tmp_path / "nan.h5"
    values = np.ones((4, 1, 8, 8), dtype=np.float32)
    values[1, 0, 2, 2] = np.nan
    with h5py.File(nan, "w") as handle:
        handle["solution"] = values
    with pytest.raises(DataError, match="NaN"):
        load_dataset(DataConfig(name="darcy", root=str(nan), num_train=2, num_test=2))

    with pytest.raises(DataError, match="no official test split"):
        load_dataset(DataConfig(name="darcy", root=str(nan), split="official"))


def test_truncated_file_raises(darcy_file: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.h5"
    cut.write_bytes(darcy_file.read_bytes()[:4000])
    message = load_error(DataConfig(name="darcy", root=str(cut), num_train=10, num_test=5))
    assert message.startswith(f"{cut}: truncated (has 4000 bytes, its HDF5 superblock declares")


# ---------------------------------------------------------------------------------------------
# The cheap check: inspect_darcy, check_darcy


def _copy(darcy_file: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "darcy_32.h5"
    path.write_bytes(darcy_file.read_bytes())
    return path


def test_check_darcy_accepts_the_cli_file_reading_metadata_only(darcy_file: Path) -> None:
    assert inspect_darcy(darcy_file) == (30, 1, 16, 16)
    assert check_darcy(darcy_file.parent) == [] and check_darcy(darcy_file) == []
    assert check_darcy(darcy_file.parent, "official") == []
    assert DARCY.check is check_darcy


def test_check_darcy_reports_a_file_cut_in_half_with_sizes(
    darcy_file: Path, tmp_path: Path
) -> None:
    path = _copy(darcy_file, tmp_path)
    length = cut_in_half(path)
    expected = f"has {length // 2} bytes, its HDF5 superblock declares {length}"
    assert check_darcy(tmp_path) == [f"truncated: darcy_32.h5 ({expected})"]
    assert check_darcy(path) == [f"truncated: darcy_32.h5 ({expected})"]  # the root is the file
    message = load_error(DataConfig(name="darcy", root=str(path), num_train=10, num_test=5))
    assert message == f"{path}: truncated ({expected})"


@pytest.mark.parametrize("content", [png_bytes(), random_bytes()], ids=["png", "random"])
def test_check_darcy_reports_a_foreign_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "darcy_32.h5"
    path.write_bytes(content)
    (problem,) = check_darcy(tmp_path)
    magic = content[:8].hex().upper()
    assert problem.startswith(f"not an HDF5 file: darcy_32.h5 (starts with 0x{magic}...; an HDF5")
    message = load_error(DataConfig(name="darcy", root=str(path), num_train=2, num_test=1))
    assert message.startswith(f"{path}: not an HDF5 file (starts with 0x{magic}")


@pytest.mark.parametrize("options", [{"libver": "latest"}, {"userblock_size": 512}])
def test_check_darcy_reads_other_superblocks(tmp_path: Path, options: dict) -> None:
    # Superblock version 2/3 (libver latest), and a superblock after a 512-byte user block.
    path = tmp_path / "darcy_32.h5"
    with h5py.File(path, "w", **options) as handle:
        handle["solution"] = np.arange(4 * 64, dtype=np.float32).reshape(4, 1, 8, 8)
    assert check_darcy(tmp_path) == []
    length = cut_in_half(path)
    assert check_darcy(tmp_path) == [
        f"truncated: darcy_32.h5 (has {length // 2} bytes, its HDF5 superblock declares {length})"
    ]


def test_check_darcy_reports_the_solution_dataset(tmp_path: Path) -> None:
    path = tmp_path / "darcy_32.h5"
    with h5py.File(path, "w") as handle:
        handle["coefficient"] = np.ones((4, 1, 8, 8), dtype=np.float32)
    assert check_darcy(tmp_path) == [
        "missing dataset: darcy_32.h5 (expected a dataset 'solution' of shape (N, 1, H, W), "
        "found ['coefficient'])"
    ]
    with h5py.File(path, "w") as handle:
        handle["solution"] = np.ones((4, 3, 8, 8), dtype=np.float32)
    (problem,) = check_darcy(tmp_path)
    assert problem.startswith("wrong shape: darcy_32.h5 (") and "(4, 3, 8, 8)" in problem
    with h5py.File(path, "w") as handle:
        handle["solution"] = np.ones((4, 1, 8, 8), dtype=np.int32)
    assert check_darcy(tmp_path) == [
        "wrong type: darcy_32.h5 (expected floating-point 'solution', found int32)"
    ]
    path.write_bytes(b"")
    assert check_darcy(tmp_path) == ["empty: darcy_32.h5 (0 bytes)"]


def test_check_darcy_reports_what_h5py_cannot_open(darcy_file: Path, tmp_path: Path) -> None:
    # The signature and the declared size are right, the superblock behind them is not.
    path = _copy(darcy_file, tmp_path)
    data = bytearray(path.read_bytes())
    data[8] = 9  # an unknown superblock version
    path.write_bytes(bytes(data))
    (problem,) = check_darcy(tmp_path)
    assert problem.startswith("corrupt HDF5 file: darcy_32.h5 (Unable to ")


def test_split_larger_than_file_raises(darcy_file: Path) -> None:
    with pytest.raises(DataError, match="30 images"):
        load_dataset(DataConfig(name="darcy", root=str(darcy_file), num_train=25, num_test=10))


def test_write_darcy_round_trips(tmp_path: Path) -> None:
    fields = generate_darcy(2, resolution=8, seed=1, refinement=1)
    path = write_darcy(tmp_path / "sub" / "f.h5", fields, generation_attributes(2, 8, 1, 1))
    assert not (tmp_path / "sub" / "f.h5.part").exists()
    with h5py.File(path, "r") as handle:
        np.testing.assert_array_equal(handle["coefficient"][:], fields.coefficient)
        assert "cell-centred" in handle.attrs["scheme"]


def test_packaged_config_matches_the_spec() -> None:
    from tkam.config import load_config

    config = load_config("darcy")
    assert config.data.name == "darcy"
    assert (config.data.num_train, config.data.num_test) == (1000, 1000)
    assert config.prior.widths == (40, 81) and config.prior.grid_size == 30
    assert config.prior.reference == "lognormal" and config.prior.eps_scale == 1.0
    assert config.generator.widths == (81, 162) and config.generator.grid_size == 30
    assert config.generator.eps_scale == 0.1
    assert (config.generator.variance, config.generator.noise) == (0.1, 0.1)
    assert config.train.learning_rate == 1e-3 and config.train.epochs == 1000
    assert (config.train.batch_size, config.train.importance_samples) == (100, 100)


def test_training_runs_on_darcy(darcy_file: Path, tmp_path: Path) -> None:
    smoke_fit(tmp_path, name="darcy", root=str(darcy_file), num_train=20, num_test=10)


def test_a_failed_write_keeps_the_previous_file(tmp_path: Path) -> None:
    fields = generate_darcy(2, resolution=8, seed=1, refinement=1)
    path = write_darcy(tmp_path / "f.h5", fields, generation_attributes(2, 8, 1, 1))
    before = path.read_bytes()
    with pytest.raises(TypeError):  # h5py cannot store an arbitrary object as an attribute
        write_darcy(path, fields, {"bad": object()})
    assert path.read_bytes() == before
    assert [entry.name for entry in tmp_path.iterdir()] == ["f.h5"]  # no temporary left


def test_min_max_scale_is_global_and_refuses_constant_fields() -> None:
    values = np.array([[[[1.0, 3.0]]], [[[5.0, 2.0]]]])
    np.testing.assert_allclose(min_max_scale(values, "src"), [[[[0, 0.5]]], [[[1, 0.25]]]])
    assert min_max_scale(values, "src").dtype == np.float32
    with pytest.raises(DataError, match="src: 'solution' is constant"):
        min_max_scale(np.ones((2, 1, 2, 2)), "src")


def test_declaration_generated_not_downloaded(tmp_path: Path) -> None:
    assert missing_darcy(tmp_path) == ["darcy_32.h5"]
    (tmp_path / "darcy_32.h5").write_bytes(b"")
    assert missing_darcy(tmp_path) == [] and missing_darcy(tmp_path, "official") == []
    assert not DARCY.sources and DARCY.labels is None and DARCY.kind == "generated"
    message = DARCY.no_download(tmp_path / "x.h5")
    assert "tkam data darcy" in message and str(tmp_path / "x.h5") in message
