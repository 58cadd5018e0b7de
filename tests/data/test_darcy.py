"""Darcy flow: the finite-volume solver's convergence order, the random coefficient, the generator,
the HDF5 file and its loader (spec section 6, A14)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from tests.data.test_formats import smoke_fit
from tkam.cli import main
from tkam.config import DataConfig
from tkam.data import DataError, load_dataset
from tkam.data.darcy import (
    COEFFICIENT_HIGH,
    COEFFICIENT_LOW,
    darcy_coefficients,
    darcy_matrix,
    field_noise,
    gaussian_random_field,
    generate_darcy,
    generation_attributes,
    solve_darcy,
    write_darcy,
)

PI = np.pi


def manufactured(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Coefficient, right-hand side and exact solution at the n x n cell centres.

    u* = sin(pi x) sin(pi y) (zero on the boundary) and a smooth, positive, non-symmetric
    a = 1 + sin(2 pi x) cos(3 pi y) / 2 + x y / 4; f = -div(a grad u*) = -(a_x u_x + a_y u_y
    + a (u_xx + u_yy)), computed by hand.
    """
    centres = (np.arange(n) + 0.5) / n
    x, y = np.meshgrid(centres, centres, indexing="xy")  # rows are y, columns x
    a = 1.0 + 0.5 * np.sin(2 * PI * x) * np.cos(3 * PI * y) + 0.25 * x * y
    a_x = PI * np.cos(2 * PI * x) * np.cos(3 * PI * y) + 0.25 * y
    a_y = -1.5 * PI * np.sin(2 * PI * x) * np.sin(3 * PI * y) + 0.25 * x
    u = np.sin(PI * x) * np.sin(PI * y)
    u_x = PI * np.cos(PI * x) * np.sin(PI * y)
    u_y = PI * np.sin(PI * x) * np.cos(PI * y)
    laplacian = -2 * PI**2 * u
    f = -(a_x * u_x + a_y * u_y + a * laplacian)
    return a, f, u


def test_solver_converges_at_second_order() -> None:
    sizes = [16, 32, 64, 128]
    max_errors, l2_errors = [], []
    for n in sizes:
        a, f, exact = manufactured(n)
        error = solve_darcy(a, f) - exact
        max_errors.append(np.abs(error).max())
        l2_errors.append(np.sqrt(np.mean(error**2)))
    max_orders = np.log2(np.array(max_errors[:-1]) / np.array(max_errors[1:]))
    l2_orders = np.log2(np.array(l2_errors[:-1]) / np.array(l2_errors[1:]))
    assert np.all((max_orders > 1.8) & (max_orders < 2.2)), max_orders
    assert np.all((l2_orders > 1.8) & (l2_orders < 2.2)), l2_orders
    assert max_errors[-1] < 2e-4


def test_solver_batches_and_threads_agree_with_one_field_at_a_time() -> None:
    rng = np.random.default_rng(0)
    a = np.exp(rng.standard_normal((3, 12, 12)))
    f = rng.standard_normal((3, 12, 12))
    together = solve_darcy(a, f, workers=2)
    alone = np.stack([solve_darcy(a[i], f[i], workers=1) for i in range(3)])
    np.testing.assert_allclose(together, alone, rtol=1e-12, atol=1e-14)


def test_matrix_is_symmetric_positive_definite_and_matches_the_scheme() -> None:
    rng = np.random.default_rng(1)
    a = np.exp(rng.standard_normal((5, 5)))
    matrix = darcy_matrix(a).toarray()
    np.testing.assert_allclose(matrix, matrix.T, rtol=0, atol=0)
    assert np.linalg.eigvalsh(matrix).min() > 0
    # Interior face between cells (2, 2) and (2, 3): minus the harmonic mean of the two cells.
    harmonic = 2 * a[2, 2] * a[2, 3] / (a[2, 2] + a[2, 3])
    assert matrix[2 * 5 + 2, 2 * 5 + 3] == pytest.approx(-harmonic)
    # Corner cell (0, 0): two interior faces and two boundary faces at half-cell distance.
    east = 2 * a[0, 0] * a[0, 1] / (a[0, 0] + a[0, 1])
    north = 2 * a[0, 0] * a[1, 0] / (a[0, 0] + a[1, 0])
    assert matrix[0, 0] == pytest.approx(east + north + 4 * a[0, 0])
    # A constant coefficient scales the solution by its inverse.
    np.testing.assert_allclose(
        solve_darcy(np.full((6, 6), 4.0)), solve_darcy(np.ones((6, 6))) / 4.0, rtol=1e-12
    )


def test_solver_rejects_bad_coefficients() -> None:
    with pytest.raises(ValueError, match="positive"):
        solve_darcy(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="square"):
        solve_darcy(np.ones((4, 5)))


def test_random_field_is_the_cosine_series() -> None:
    n = 12
    noise = np.random.default_rng(2).standard_normal((n, n))
    field = gaussian_random_field(noise)
    centres = (np.arange(n) + 0.5) / n
    k = np.arange(n)
    basis = np.where(k > 0, np.sqrt(2.0), 1.0) * np.cos(PI * np.outer(centres, k))  # (n, K)
    weights = 1.0 / (PI**2 * (k[:, None] ** 2 + k[None, :] ** 2) + 9.0)
    weights[0, 0] = 0.0  # mean-zero field
    expected = basis @ (noise * weights) @ basis.T
    np.testing.assert_allclose(field, expected, rtol=1e-12, atol=1e-14)
    assert abs(field.mean()) < 1e-12  # no constant mode: the cell average vanishes


def test_generated_fields_are_reproducible_and_independent_of_chunking() -> None:
    first = generate_darcy(5, resolution=8, seed=3, chunk_size=2)
    again = generate_darcy(3, resolution=8, seed=3, chunk_size=5)
    np.testing.assert_array_equal(first.solution[:3], again.solution)
    np.testing.assert_array_equal(first.coefficient[:3], again.coefficient)
    other = generate_darcy(3, resolution=8, seed=4)
    assert not np.array_equal(first.coefficient[:3], other.coefficient)
    assert first.coefficient.shape == first.solution.shape == (5, 1, 8, 8)
    assert first.coefficient.dtype == first.solution.dtype == np.float32
    assert set(np.unique(first.coefficient)) <= {COEFFICIENT_LOW, COEFFICIENT_HIGH}
    assert first.solution.min() > 0  # f = 1 > 0 with u = 0 on the boundary: u > 0 inside


def test_generated_coefficient_values_are_balanced_and_solutions_plausible() -> None:
    fields = generate_darcy(40, resolution=16, seed=0, refinement=1)
    high = (fields.coefficient == COEFFICIENT_HIGH).mean()
    assert 0.4 < high < 0.6  # mean-zero field thresholded at 0
    # The compliance sum(u) = f^T A(a)^-1 f decreases as a grows (the matrix is monotone in a in
    # the Loewner order), so it lies between those of a = 12 and a = 3 everywhere.
    stiff = solve_darcy(np.full((16, 16), COEFFICIENT_HIGH)).sum()
    soft = solve_darcy(np.full((16, 16), COEFFICIENT_LOW)).sum()
    compliance = fields.solution.astype(np.float64).sum(axis=(1, 2, 3))
    assert np.all((compliance > stiff) & (compliance < soft))
    assert compliance.std() > 0.05 * compliance.mean()  # the fields differ


def test_refinement_samples_the_fine_solution_at_the_output_centres() -> None:
    coarse = generate_darcy(2, resolution=8, seed=5, refinement=3)
    noise_grid = 24
    fine_a = darcy_coefficients(gaussian_random_field(field_noise(5, 0, 2, noise_grid)))
    fine_u = solve_darcy(fine_a)
    np.testing.assert_allclose(coarse.solution[:, 0], fine_u[:, 1::3, 1::3], rtol=1e-6)
    np.testing.assert_array_equal(coarse.coefficient[:, 0], fine_a[:, 1::3, 1::3])
    with pytest.raises(ValueError, match="odd"):
        generate_darcy(1, resolution=8, refinement=2)


# ---------------------------------------------------------------------------------------------
# File and loader


@pytest.fixture(scope="module")
def darcy_file(tmp_path_factory) -> Path:
    """A small Darcy file written by the CLI: 30 fields at 16x16."""
    path = tmp_path_factory.mktemp("darcy") / "darcy_32.h5"
    arguments = ["--num", "30", "--resolution", "16", "--seed", "7", "--refinement", "1"]
    assert main(["data", "darcy", *arguments, "--out", str(path), "--quiet"]) == 0
    return path


def test_cli_writes_datasets_and_settings(darcy_file: Path) -> None:
    with h5py.File(darcy_file, "r") as handle:
        assert handle["coefficient"].shape == handle["solution"].shape == (30, 1, 16, 16)
        assert handle["solution"].dtype == np.float32
        attributes = dict(handle.attrs)
        solution = handle["solution"][:]
    assert attributes["seed"] == 7 and attributes["resolution"] == 16
    assert attributes["refinement"] == 1 and attributes["num_fields"] == 30
    assert attributes["coefficient_high"] == 12.0 and attributes["coefficient_low"] == 3.0
    assert attributes["grf_tau"] == 3.0 and attributes["grf_alpha"] == 2.0
    expected = generate_darcy(30, resolution=16, seed=7, refinement=1).solution
    np.testing.assert_array_equal(solution, expected)


def test_cli_refuses_to_overwrite(darcy_file: Path, capsys) -> None:
    assert main(["data", "darcy", "--num", "1", "--out", str(darcy_file)]) == 2
    assert "--force" in capsys.readouterr().err


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
    with pytest.raises(DataError, match="not a readable HDF5") as info:
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
    with pytest.raises(DataError) as info:
        load_dataset(DataConfig(name="darcy", root=str(cut), num_train=10, num_test=5))
    assert str(cut) in str(info.value)


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
