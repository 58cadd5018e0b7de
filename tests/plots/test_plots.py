"""Figures: PNG files, exact grid sizes, prior panels and loss curves (maths 9)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib import image as mpimg

from tkam.config import PriorConfig
from tkam.plots import (
    image_grid,
    plot_losses,
    plot_prior,
    plot_prior_grid,
    prior_rows_are_inputs,
    save_evolution_gif,
    save_image_grid,
    snapshot_frames,
)
from tkam.prior import build_prior

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path) -> np.ndarray:
    """Check ``path`` is a PNG file and return its pixels ``(H, W, channels)``."""
    assert path.is_file()
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    return mpimg.imread(path)


# ---------------------------------------------------------------------------------------------
# Image grids


@pytest.mark.parametrize(
    ("count", "channels", "ncols", "scale", "rows", "cols"),
    [
        (10, 1, None, 1, 3, 4),  # ceil(sqrt(10)) = 4 columns, 3 rows
        (6, 3, 2, 1, 3, 2),
        (5, 1, 5, 3, 1, 5),
    ],
)
def test_grid_png_has_the_exact_pixel_size(
    tmp_path: Path, count: int, channels: int, ncols: int | None, scale: int, rows: int, cols: int
) -> None:
    height, width = 8, 6
    images = torch.rand(count, channels, height, width, generator=torch.Generator().manual_seed(0))
    path = save_image_grid(images, tmp_path / "nested" / "grid.png", ncols=ncols, scale=scale)
    pixels = assert_png(path)
    assert pixels.shape[:2] == (rows * (scale * height + 1) + 1, cols * (scale * width + 1) + 1)


def test_grid_pixels_match_the_images(tmp_path: Path) -> None:
    images = np.zeros((4, 1, 3, 3), dtype=np.float32)
    images[1] = 1.0
    images[2, 0, 1, 1] = 1.0
    pixels = assert_png(save_image_grid(images, tmp_path / "grid.png", ncols=2, pad_value=0.5))
    gray = pixels[..., 0]
    assert pixels.shape[:2] == (9, 9)
    np.testing.assert_allclose(gray[1:4, 5:8], 1.0)  # second tile: white
    np.testing.assert_allclose(gray[1:4, 1:4], 0.0)  # first tile: black
    assert gray[6, 2] == 1.0 and gray[5, 1] == 0.0  # third tile: one white centre pixel
    np.testing.assert_allclose(gray[0], 0.5, atol=1 / 255)  # separator
    # Grayscale is stored with equal channels.
    np.testing.assert_allclose(pixels[..., 0], pixels[..., 2])


def test_grid_rgb_keeps_colours() -> None:
    images = torch.zeros(1, 3, 2, 2)
    images[0, 0] = 1.0  # pure red
    grid = image_grid(images)
    assert grid.shape == (4, 4, 3)
    np.testing.assert_array_equal(grid[1:3, 1:3], [[[1, 0, 0]] * 2] * 2)


def test_grid_with_title_adds_a_band_above(tmp_path: Path) -> None:
    images = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    pixels = assert_png(save_image_grid(images, tmp_path / "titled.png", title="samples"))
    assert pixels.shape[:2] == (2 * 29 + 1 + 28, 2 * 29 + 1)


@pytest.mark.parametrize("shape", [(4, 8, 8), (4, 2, 8, 8), (0, 1, 8, 8), (2, 1, 1, 8, 8)])
def test_grid_rejects_bad_shapes_naming_them(tmp_path: Path, shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=str(shape).replace("(", r"\(").replace(")", r"\)")):
        save_image_grid(torch.zeros(shape), tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def test_grid_rejects_non_finite_values() -> None:
    images = torch.zeros(2, 1, 4, 4)
    images[1, 0, 2, 2] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        image_grid(images)


# ---------------------------------------------------------------------------------------------
# Prior components


@pytest.fixture(scope="module")
def univariate_export() -> dict[str, np.ndarray]:
    prior = build_prior(
        PriorConfig(widths=(3, 4), eps_scale=1.0), rng=torch.Generator().manual_seed(0)
    )
    return prior.export()


@pytest.fixture(scope="module")
def mixture_export() -> dict[str, np.ndarray]:
    config = PriorConfig(widths=(3, 4), eps_scale=1.0, mixture=True, reference="gaussian")
    return build_prior(config, rng=torch.Generator().manual_seed(0)).export()


def test_plot_prior_writes_a_png(tmp_path: Path, univariate_export: dict[str, np.ndarray]) -> None:
    pixels = assert_png(plot_prior(univariate_export, tmp_path / "a" / "prior.png"))
    # 12 components in 3 columns and 4 rows: a wide and tall figure, not an empty canvas.
    assert pixels.shape[0] > 600 and pixels.shape[1] > 600
    assert pixels[..., :3].std() > 0.05


def test_plot_prior_explicit_components_and_mixture_rows(
    tmp_path: Path, mixture_export: dict[str, np.ndarray]
) -> None:
    one = assert_png(plot_prior(mixture_export, tmp_path / "one.png", components=[(3, 2)]))
    three = assert_png(
        plot_prior(mixture_export, tmp_path / "three.png", components=[(0, 0), (1, 2), (3, 1)])
    )
    assert three.shape[1] > 2 * one.shape[1]  # one row of three panels vs one panel
    with pytest.raises(ValueError, match=r"\(4, 0\)"):
        plot_prior(mixture_export, tmp_path / "bad.png", components=[(4, 0)])


def test_rows_are_resolved_from_shapes_or_key(
    univariate_export: dict[str, np.ndarray], mixture_export: dict[str, np.ndarray]
) -> None:
    assert prior_rows_are_inputs(univariate_export) is True  # nodes (P=3, n)
    assert prior_rows_are_inputs(mixture_export) is False  # nodes (Q=4, n)
    with pytest.raises(ValueError, match="rows='outputs'"):
        prior_rows_are_inputs(univariate_export, rows="outputs")
    with pytest.raises(ValueError, match="rows must be one of"):
        prior_rows_are_inputs(univariate_export, rows="columns")
    square = {"nodes": np.zeros((2, 5)), "density": np.zeros((2, 2, 5))}
    with pytest.raises(ValueError, match="cannot tell"):
        prior_rows_are_inputs(square)
    assert prior_rows_are_inputs({**square, "rows_are_inputs": False}) is False
    assert prior_rows_are_inputs(square, rows="inputs") is True


def test_plot_prior_rejects_a_malformed_export(
    tmp_path: Path, univariate_export: dict[str, np.ndarray]
) -> None:
    with pytest.raises(KeyError, match="reference"):
        plot_prior(
            {"nodes": univariate_export["nodes"], "density": univariate_export["density"]},
            tmp_path / "x.png",
        )
    broken = {**univariate_export, "density": univariate_export["density"][..., :-1]}
    with pytest.raises(ValueError, match="number of nodes"):
        plot_prior(broken, tmp_path / "x.png")


# ---------------------------------------------------------------------------------------------
# Loss curves


def _write_losses(path: Path, train_loss: list[float]) -> Path:
    lines = ["step,train_loss,test_mse,ess,note"]
    for step, loss in enumerate(train_loss):
        test = f"{0.1 / (step + 1)}" if step % 5 == 0 else ""  # logged every 5 steps
        lines.append(f"{step},{loss},{test},{50 + step % 7},run-a")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("sign", [1.0, -1.0])  # positive (log axis) and negative (linear)
def test_plot_losses_writes_a_png(tmp_path: Path, sign: float) -> None:
    csv_path = _write_losses(tmp_path / "loss.csv", [sign * 100 / (s + 1) for s in range(40)])
    pixels = assert_png(plot_losses(csv_path, tmp_path / "figs" / "loss.png"))
    assert pixels.shape[0] > 300 and pixels[..., :3].std() > 0.05


def test_plot_losses_needs_a_step_column(tmp_path: Path) -> None:
    csv_path = tmp_path / "loss.csv"
    csv_path.write_text("iteration,train_loss\n0,1.0\n")
    with pytest.raises(ValueError, match="'step'") as info:
        plot_losses(csv_path, tmp_path / "loss.png")
    assert str(csv_path) in str(info.value)


def test_plot_losses_rejects_an_unknown_column(tmp_path: Path) -> None:
    csv_path = _write_losses(tmp_path / "loss.csv", [1.0, 0.5])
    with pytest.raises(ValueError, match="kl"):
        plot_losses(csv_path, tmp_path / "loss.png", columns=["train_loss", "kl"])
    path = plot_losses(csv_path, tmp_path / "loss.png", columns=["train_loss"])
    assert_png(path)


# ---------------------------------------------------------------------------------------------
# Every prior component; evolution GIF


@pytest.mark.parametrize("mixture", [False, True])
def test_prior_grid_draws_one_panel_per_node_row(tmp_path: Path, mixture: bool) -> None:
    config = PriorConfig(widths=(3, 5), basis="rbf", grid_size=5, num_nodes=30, mixture=mixture)
    prior = build_prior(config, rng=torch.Generator().manual_seed(0))
    export = prior.export()
    path = plot_prior_grid(export, tmp_path / "grid" / "prior_grid.png", ncols=2)
    pixels = assert_png(path)
    assert pixels.shape[0] > 100 and pixels.shape[1] > 100
    with pytest.raises(ValueError, match="expected nodes"):
        plot_prior_grid({**export, "density": export["density"][0]}, tmp_path / "bad.png")


def test_evolution_gif_orders_frames_by_step_and_pads_sizes(tmp_path: Path) -> None:
    from PIL import Image

    samples = tmp_path / "samples"
    samples.mkdir()
    # Step 10 sorts after step 9 only numerically; the frames differ in size and colour.
    for step, size, value in ((10, (12, 8), 200), (9, (10, 10), 100), (1, (6, 6), 0)):
        Image.new("RGB", size, (value,) * 3).save(samples / f"step_{step:d}.png")
    (samples / "notes.txt").write_text("ignored")
    assert [p.name for p in snapshot_frames(samples)] == ["step_1.png", "step_9.png", "step_10.png"]
    gif = Image.open(save_evolution_gif(samples, tmp_path / "out" / "evolution.gif", frame_ms=100))
    assert gif.n_frames == 3 and gif.size == (12, 10)
    centres = []
    for index in range(3):
        gif.seek(index)
        centres.append(gif.convert("L").getpixel((6, 5)))
    assert centres == [0, 100, 200]
    with pytest.raises(FileNotFoundError, match="no step_"):
        save_evolution_gif(tmp_path / "out", tmp_path / "none.gif")
