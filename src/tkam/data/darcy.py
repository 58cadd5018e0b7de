"""Darcy flow fields: our own generator, its solver, and the loader (spec section 6, A14).

The standard recipe (as in the Darcy benchmarks of the neural-operator literature):

1. **Coefficient.** A Gaussian random field ``g`` on the unit square with covariance operator
   ``(-Laplacian + 9 I)^-2`` (``tau = 3``, ``alpha = 2``), thresholded: ``a = 12`` where
   ``g >= 0``, else ``a = 3``. We sample ``g`` by spectral synthesis in the eigenbasis of the
   Neumann Laplacian, the cosine series

       g(x, y) = sum_{(k, l) != (0, 0)} xi_kl (pi^2 (k^2 + l^2) + 9)^-1 phi_k(x) phi_l(y),

   ``xi_kl ~ N(0, 1)``, ``phi_0 = 1``, ``phi_k = sqrt(2) cos(pi k x)`` (orthonormal on [0, 1]).
   The constant mode is left out, as in the standard recipe: the field has mean zero over the
   square, so that neither value dominates the typical field. The eigenvalues ``pi^2 |k|^2``
   are ``4 pi^2 |nu|^2`` in the frequency ``nu = k / 2`` of each cosine, so the spectral
   density is proportional to ``(4 pi^2 |nu|^2 + 9)^-2``. The series is truncated to the modes
   the solver grid resolves (``k, l < n_fine``) and evaluated at the cell centres in one
   inverse cosine transform (DCT-III) per field. Neumann (not periodic) modes are chosen
   because the square is not periodic: a periodic field would tie opposite edges.

2. **Solution.** ``-div(a grad u) = 1`` on the unit square with ``u = 0`` on the boundary, by
   the cell-centred finite-volume 5-point scheme: one unknown per cell centre, the coefficient
   on an interior face the harmonic mean of its two cells (the exact flux for a coefficient
   that is constant in each cell), and on a boundary face the cell's own coefficient over the
   half-cell distance (``u = 0`` on the face). :func:`solve_darcy` accepts any positive
   coefficient field and right-hand side; the tests check second-order convergence against a
   manufactured solution (observed order about 1.9 in the max norm and 2.0 in L2).

3. **Resolution.** The fields are solved on a grid ``refinement`` times finer than the output
   (default 3: 96x96 for 32x32 output) and the output takes the fine values at the output cell
   centres (an odd refinement makes every output centre a fine centre, so the coefficient and
   the solution are point values at the same points). The coefficient jumps across curved
   interfaces, where any grid-aligned scheme is only first-order accurate. Measured on 24 fields
   against a 288x288 solve of the same coefficient (the same series evaluated on each grid),
   the 32x32 solution's relative max error is 5.4 % when solved directly at 32x32, 1.6 % at
   refinement 3 and 0.7 % at refinement 5 (relative L2: 1.5 %, 0.3 %, 0.15 %). Refinement 3
   buys the larger part of the gain and keeps 1,000 fields inside 30 s on two cores
   (``benchmarks/darcy.py``).

Each linear system is assembled from one precomputed sparsity pattern (vectorised over a chunk
of fields) and factorised with SuperLU (``scipy.sparse.linalg.splu``), fields spread over a
small thread pool. Field ``i`` of seed ``s`` depends only on ``(s, i)``: generating 10 fields
gives the first 10 of 1,000.

The HDF5 file holds ``coefficient`` and ``solution``, each ``(N, 1, H, W)`` float32 (rows are
``y``, columns ``x``), with the generation settings as attributes. :func:`load_darcy` reads
``solution``, splits it (first ``num_train``, next ``num_test``) and scales it globally to
``[0, 1]`` by the minimum and maximum over the loaded fields (ambiguity A14).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import numpy as np
import scipy.fft
import scipy.sparse
import scipy.sparse.linalg

from tkam.config import DataConfig
from tkam.data.images import DataError, ImageData, no_official_split, split_counts

__all__ = [
    "COEFFICIENT_HIGH",
    "COEFFICIENT_LOW",
    "DARCY_FILE",
    "DEFAULT_REFINEMENT",
    "GRF_ALPHA",
    "GRF_TAU",
    "DarcyFields",
    "darcy_coefficients",
    "darcy_matrix",
    "darcy_path",
    "default_workers",
    "field_noise",
    "gaussian_random_field",
    "generate_darcy",
    "generation_attributes",
    "load_darcy",
    "solve_darcy",
    "write_darcy",
]

COEFFICIENT_HIGH = 12.0
COEFFICIENT_LOW = 3.0
GRF_TAU = 3.0
GRF_ALPHA = 2.0
DEFAULT_REFINEMENT = 3
DARCY_FILE = "darcy_32.h5"
_PERMUTATION = "MMD_AT_PLUS_A"  # minimum degree on A^T + A: the matrices are symmetric


class DarcyFields(NamedTuple):
    """Generated Darcy flow pairs.

    Attributes:
        coefficient: ``(N, 1, n, n)`` float32, values 3 and 12.
        solution: ``(N, 1, n, n)`` float32 pressure ``u`` at the cell centres.
    """

    coefficient: np.ndarray
    solution: np.ndarray


# ------------------------------------------------------------------------------------------------
# Gaussian random field and coefficient


def gaussian_random_field(noise: np.ndarray) -> np.ndarray:
    """Values of the cosine-series Gaussian random field at the cell centres.

    Args:
        noise: ``(..., n, n)`` standard normal series coefficients ``xi_kl`` (``k`` along rows,
            i.e. ``y``; ``l`` along columns, ``x``).

    Returns:
        ``(..., n, n)`` float64 values ``g(x_j, y_i)`` at ``x_j = (j + 1/2) / n``,
        ``y_i = (i + 1/2) / n``; covariance operator ``(-Laplacian + tau^2)^-alpha`` with Neumann
        boundary conditions, restricted to mean-zero fields (``xi_00`` is ignored) and truncated
        to ``k, l < n``.
    """
    noise = np.asarray(noise, dtype=np.float64)
    n = noise.shape[-1]
    if noise.ndim < 2 or noise.shape[-2] != n:
        raise ValueError(f"noise must be (..., n, n), got shape {noise.shape}")
    k = np.arange(n)
    eigenvalues = np.pi**2 * (k[:, None] ** 2 + k[None, :] ** 2) + GRF_TAU**2  # (n, n)
    # Orthonormal cosines carry sqrt(2) for k > 0; DCT-III adds x_0 + 2 sum_k x_k cos(...), so
    # the k > 0 terms are halved: sqrt(2) / 2 per axis.
    axis_factor = np.where(k > 0, np.sqrt(2.0) / 2.0, 1.0)
    weights = eigenvalues ** (-GRF_ALPHA / 2.0) * axis_factor[:, None] * axis_factor[None, :]
    weights[0, 0] = 0.0  # no constant mode: a mean-zero field
    return scipy.fft.dctn(noise * weights, type=3, axes=(-2, -1))


def field_noise(seed: int, start: int, count: int, size: int) -> np.ndarray:
    """Series coefficients of fields ``start .. start + count - 1``; field ``i`` uses its own
    stream ``SeedSequence(seed, spawn_key=(i,))``, so it does not depend on chunking."""
    out = np.empty((count, size, size))
    for offset in range(count):
        stream = np.random.SeedSequence(seed, spawn_key=(start + offset,))
        out[offset] = np.random.default_rng(stream).standard_normal((size, size))
    return out


def darcy_coefficients(field: np.ndarray) -> np.ndarray:
    """Threshold a Gaussian random field: 12 where ``field >= 0``, else 3 (float64)."""
    return np.where(field >= 0.0, COEFFICIENT_HIGH, COEFFICIENT_LOW)


# ------------------------------------------------------------------------------------------------
# Finite-volume solver


class _Stencil(NamedTuple):
    """CSC sparsity pattern of the n x n 5-point matrix, and where each entry comes from."""

    indices: np.ndarray
    indptr: np.ndarray
    order: np.ndarray  # CSC position -> position in the concatenated entry list


@functools.lru_cache(maxsize=8)
def _stencil(n: int) -> _Stencil:
    cell = np.arange(n * n).reshape(n, n)
    east_a, east_b = cell[:, :-1].ravel(), cell[:, 1:].ravel()  # faces between columns
    north_a, north_b = cell[:-1, :].ravel(), cell[1:, :].ravel()  # faces between rows
    diagonal = cell.ravel()
    # Entry list: diagonal, then each face twice (a,b) and (b,a) for x faces and y faces.
    rows = np.concatenate([diagonal, east_a, east_b, north_a, north_b])
    cols = np.concatenate([diagonal, east_b, east_a, north_b, north_a])
    order = np.lexsort((rows, cols))  # CSC: by column, then row
    indptr = np.concatenate([[0], np.cumsum(np.bincount(cols, minlength=n * n))])
    return _Stencil(rows[order].astype(np.int32), indptr.astype(np.int32), order)


def _matrix_values(coefficient: np.ndarray) -> np.ndarray:
    """CSC values of the finite-volume matrices of a batch ``(B, n, n)`` -> ``(B, nnz)``.

    With face fluxes ``T (u_P - u_Q)``: ``T`` = harmonic mean of the two cells' coefficients on
    an interior face (face length h over centre distance h), ``2 a_P`` on a boundary face (h over
    the half-cell distance h/2, ``u = 0`` on the face).
    """
    a = coefficient
    east = 2.0 * a[:, :, :-1] * a[:, :, 1:] / (a[:, :, :-1] + a[:, :, 1:])  # (B, n, n-1)
    north = 2.0 * a[:, :-1, :] * a[:, 1:, :] / (a[:, :-1, :] + a[:, 1:, :])  # (B, n-1, n)
    diagonal = np.zeros_like(a)
    diagonal[:, :, :-1] += east
    diagonal[:, :, 1:] += east
    diagonal[:, :-1, :] += north
    diagonal[:, 1:, :] += north
    diagonal[:, :, 0] += 2.0 * a[:, :, 0]
    diagonal[:, :, -1] += 2.0 * a[:, :, -1]
    diagonal[:, 0, :] += 2.0 * a[:, 0, :]
    diagonal[:, -1, :] += 2.0 * a[:, -1, :]
    batch = len(a)
    east, north = east.reshape(batch, -1), north.reshape(batch, -1)
    entries = np.concatenate([diagonal.reshape(batch, -1), -east, -east, -north, -north], axis=1)
    return np.ascontiguousarray(entries[:, _stencil(a.shape[-1]).order])


def _check_coefficient(coefficient: np.ndarray) -> np.ndarray:
    a = np.asarray(coefficient, dtype=np.float64)
    if a.ndim < 2 or a.shape[-1] != a.shape[-2] or a.shape[-1] < 1:
        raise ValueError(f"coefficient must be (..., n, n) on a square grid, got {a.shape}")
    if not (np.all(np.isfinite(a)) and np.all(a > 0)):
        raise ValueError("coefficient must be finite and positive everywhere")
    return a


def darcy_matrix(coefficient: np.ndarray) -> scipy.sparse.csc_matrix:
    """The finite-volume matrix of ``-div(a grad u)`` with ``u = 0`` on the boundary.

    Args:
        coefficient: ``(n, n)`` positive values of ``a`` at the cell centres of the unit square
            (row = y, column = x).

    Returns:
        ``(n^2, n^2)`` symmetric positive definite CSC matrix ``A`` (cells numbered row-major)
        such that ``A u = h^2 f`` is the scheme (``h = 1 / n``).
    """
    a = _check_coefficient(coefficient)
    if a.ndim != 2:
        raise ValueError(f"darcy_matrix takes one (n, n) field, got shape {a.shape}")
    n = a.shape[-1]
    stencil = _stencil(n)
    values = _matrix_values(a[None])[0]
    return scipy.sparse.csc_matrix((values, stencil.indices, stencil.indptr), shape=(n * n, n * n))


def default_workers() -> int:
    """Solver threads by default: the available cores, at most 2 (SuperLU gains little more)."""
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # not on every platform
        available = os.cpu_count() or 1
    return max(1, min(2, available))


def solve_darcy(
    coefficient: np.ndarray, forcing: float | np.ndarray = 1.0, workers: int | None = None
) -> np.ndarray:
    """Solve ``-div(a grad u) = f`` on the unit square with ``u = 0`` on the boundary.

    Cell-centred finite volumes on the uniform ``n x n`` grid (see the module docstring):
    second-order accurate for smooth ``a`` and ``f``.

    Args:
        coefficient: ``(n, n)`` or ``(B, n, n)`` positive ``a`` at the cell centres
            ``((j + 1/2) / n, (i + 1/2) / n)`` (row ``i`` = y, column ``j`` = x).
        forcing: ``f``, a number or an array broadcastable to ``coefficient``'s shape, at the
            same cell centres (integrated over a cell by the midpoint rule).
        workers: threads factorising fields in parallel (default: up to 2 available cores).

    Returns:
        ``u`` at the cell centres, float64, ``coefficient``'s shape.
    """
    a = _check_coefficient(coefficient)
    single = a.ndim == 2
    batch = a.reshape(-1, *a.shape[-2:])  # (B, n, n)
    n = batch.shape[-1]
    rhs = np.broadcast_to(np.asarray(forcing, dtype=np.float64), a.shape).reshape(len(batch), -1)
    rhs = rhs / n**2  # midpoint rule: f times the cell area
    stencil = _stencil(n)
    values = _matrix_values(batch)  # (B, nnz)

    def solve_one(index: int) -> np.ndarray:
        matrix = scipy.sparse.csc_matrix(
            (values[index], stencil.indices, stencil.indptr), shape=(n * n, n * n)
        )
        return scipy.sparse.linalg.splu(matrix, permc_spec=_PERMUTATION).solve(rhs[index])

    workers = workers or default_workers()
    if workers > 1 and len(batch) > 1:
        # SuperLU releases the GIL during the factorisation, so threads overlap.
        with ThreadPoolExecutor(workers) as pool:
            solutions = list(pool.map(solve_one, range(len(batch))))
    else:
        solutions = [solve_one(index) for index in range(len(batch))]
    out = np.stack(solutions).reshape(batch.shape)
    return out[0] if single else out.reshape(a.shape)


# ------------------------------------------------------------------------------------------------
# Generation and files


def generate_darcy(
    num_fields: int,
    resolution: int = 32,
    seed: int = 0,
    refinement: int = DEFAULT_REFINEMENT,
    chunk_size: int = 100,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> DarcyFields:
    """Generate Darcy flow coefficient / solution pairs (module docstring: the recipe).

    Args:
        num_fields: number of pairs N.
        resolution: output side n (32 in the spec).
        seed: field ``i`` depends only on ``(seed, i)``.
        refinement: odd factor m; the fields are solved on an ``(m n) x (m n)`` grid and
            sampled at the output cell centres.
        chunk_size: fields assembled together (memory ~ chunk_size * (m n)^2 * 100 bytes).
        workers: solver threads (default: up to 2 available cores).
        progress: called with the number of fields done after each chunk.

    Returns:
        ``(N, 1, n, n)`` float32 coefficient and solution.
    """
    if num_fields < 1:
        raise ValueError(f"num_fields must be >= 1, got {num_fields}")
    if resolution < 2:
        raise ValueError(f"resolution must be >= 2, got {resolution}")
    if refinement < 1 or refinement % 2 == 0:
        raise ValueError(
            f"refinement must be an odd positive integer (so that every output cell centre is "
            f"a cell centre of the fine grid), got {refinement}"
        )
    fine = resolution * refinement
    centre = refinement // 2
    coefficient = np.empty((num_fields, 1, resolution, resolution), dtype=np.float32)
    solution = np.empty_like(coefficient)
    for start in range(0, num_fields, chunk_size):
        count = min(chunk_size, num_fields - start)
        a = darcy_coefficients(gaussian_random_field(field_noise(seed, start, count, fine)))
        u = solve_darcy(a, 1.0, workers=workers)
        coefficient[start : start + count, 0] = a[:, centre::refinement, centre::refinement]
        solution[start : start + count, 0] = u[:, centre::refinement, centre::refinement]
        if progress is not None:
            progress(start + count)
    return DarcyFields(coefficient, solution)


def generation_attributes(
    num_fields: int, resolution: int, seed: int, refinement: int
) -> dict[str, object]:
    """The settings stored as HDF5 attributes next to the fields."""
    from tkam import __version__

    return {
        "num_fields": num_fields,
        "resolution": resolution,
        "seed": seed,
        "refinement": refinement,
        "solver_resolution": resolution * refinement,
        "coefficient_high": COEFFICIENT_HIGH,
        "coefficient_low": COEFFICIENT_LOW,
        "grf_tau": GRF_TAU,
        "grf_alpha": GRF_ALPHA,
        "grf": "cosine series (Neumann Laplacian eigenfunctions), covariance "
        "(-Laplacian + tau^2)^-alpha, mean zero (no constant mode), modes k, l < "
        "solver_resolution; a = high where the field >= 0, else low",
        "equation": "-div(a grad u) = 1 on the unit square, u = 0 on the boundary",
        "scheme": "cell-centred finite volumes, 5-point, harmonic face coefficients, SuperLU",
        "layout": "(N, 1, H, W), rows y, columns x, values at cell centres ((j+0.5)/H)",
        "generator": f"tkam {__version__}",
    }


def write_darcy(path: str | Path, fields: DarcyFields, attributes: dict[str, object]) -> Path:
    """Write ``coefficient`` and ``solution`` (float32) and ``attributes`` to an HDF5 file.

    The file is written next to its destination and renamed into place, so an interrupted run
    leaves no half-written file under the final name.
    """
    import h5py

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    try:
        with h5py.File(partial, "w") as handle:
            for name in ("coefficient", "solution"):
                handle.create_dataset(name, data=getattr(fields, name).astype(np.float32))
            for key, value in attributes.items():
                handle.attrs[key] = value
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def darcy_path(root: Path) -> Path:
    """The HDF5 file of a data root: ``root`` itself when it is a file (or named ``*.h5``),
    else ``root/darcy_32.h5``."""
    if root.is_file() or root.suffix.lower() in (".h5", ".hdf5"):
        return root
    return root / DARCY_FILE


def load_darcy(config: DataConfig, root: Path) -> ImageData:
    """Darcy flow solutions from an HDF5 file, scaled globally to ``[0, 1]`` (A14).

    Args:
        config: ``num_train`` / ``num_test`` (spec: 1,000 / 1,000); ``split`` must be ``spec``.
        root: the HDF5 file, or a folder holding ``darcy_32.h5``.

    Returns:
        ``(N, 1, H, W)`` float32 training and test fields; ``(x - min) / (max - min)`` with the
        minimum and maximum over all loaded (training and test) fields.

    Raises:
        DataError: naming the file when it is missing (with the command that generates it), is
            not HDF5, has no ``solution``, or ``solution`` is not ``(N, 1, H, W)`` / ``(N, H, W)``
            finite floats.
    """
    import h5py

    if config.split == "official":
        raise no_official_split("darcy")
    path = darcy_path(root)
    if not path.is_file():
        where = path.parent if path.parent.exists() else f"{path.parent} (does not exist)"
        raise DataError(
            f"Darcy flow data not found: no file {path.name} in {where}. Generate it with "
            f"`tkam data darcy --num 2000 --out {path}` (the spec uses 1,000 training and 1,000 "
            "test fields), or set data.root to an HDF5 file with a 'solution' dataset."
        )
    try:
        with h5py.File(path, "r") as handle:
            if "solution" not in handle or not isinstance(handle["solution"], h5py.Dataset):
                found = sorted(handle.keys())
                raise DataError(
                    f"{path}: expected a dataset 'solution' of shape (N, 1, H, W), found "
                    f"{found or 'no datasets'}"
                )
            dataset = handle["solution"]
            shape = dataset.shape
            if not (len(shape) == 4 and shape[1] == 1) and len(shape) != 3:
                raise DataError(
                    f"{path}: expected 'solution' of shape (N, 1, H, W) or (N, H, W), found {shape}"
                )
            if dataset.dtype.kind != "f":
                raise DataError(
                    f"{path}: expected floating-point 'solution', found {dataset.dtype}"
                )
            num_train, num_test = split_counts(shape[0], config.num_train, config.num_test, path)
            values = np.asarray(dataset[: num_train + num_test], dtype=np.float64)
    except OSError as error:  # not HDF5, truncated, unreadable chunks
        raise DataError(f"{path}: not a readable HDF5 file ({error})") from error
    if values.ndim == 3:
        values = values[:, None]
    if not np.all(np.isfinite(values)):
        raise DataError(f"{path}: 'solution' holds NaN or infinite values")
    low, high = float(values.min()), float(values.max())
    if not high > low:
        raise DataError(f"{path}: 'solution' is constant ({low}); cannot scale it to [0, 1]")
    scaled = ((values - low) / (high - low)).astype(np.float32)

    import torch

    return ImageData(
        torch.from_numpy(scaled[:num_train]),
        torch.from_numpy(scaled[num_train : num_train + num_test]),
        "darcy",
    )
