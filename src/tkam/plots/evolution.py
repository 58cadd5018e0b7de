"""An animated GIF of the sample grids a run wrote during training (maths 9)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from tkam.files import atomic_path
from tkam.paths import sample_grids

__all__ = ["save_evolution_gif", "snapshot_frames"]


def snapshot_frames(samples_dir: str | Path) -> list[Path]:
    """The run's ``samples/step_*.png`` grids in training order (by step number)."""
    return sample_grids(samples_dir)


def save_evolution_gif(
    samples_dir: str | Path,
    path: str | Path,
    frame_ms: int = 500,
    last_frame_ms: int = 2000,
    loop: int = 0,
) -> Path:
    """Write the sample grids of ``samples_dir`` as one looping GIF, oldest first.

    Frames of different sizes are centred on a white canvas of the largest size; the final frame
    is held longer so the trained model's samples can be looked at.

    Args:
        samples_dir: a run's ``samples`` folder.
        path: the GIF to write; parent directories are created.
        frame_ms: display time of every frame, in milliseconds.
        last_frame_ms: display time of the last frame, in milliseconds.
        loop: GIF loop count (0 = forever).

    Raises:
        FileNotFoundError: when the folder holds no ``step_*.png`` grid.
    """
    frames = snapshot_frames(samples_dir)
    if not frames:
        raise FileNotFoundError(f"no step_*.png sample grids in {samples_dir}")
    images = [Image.open(frame).convert("RGB") for frame in frames]
    width = max(image.width for image in images)
    height = max(image.height for image in images)
    canvas = []
    for image in images:
        page = Image.new("RGB", (width, height), "white")
        page.paste(image, ((width - image.width) // 2, (height - image.height) // 2))
        canvas.append(page)
    durations = [frame_ms] * (len(canvas) - 1) + [last_frame_ms]
    path = Path(path)
    with atomic_path(path, suffix=".gif") as temporary:
        canvas[0].save(
            temporary,
            format="GIF",
            save_all=True,
            append_images=canvas[1:],
            duration=durations,
            loop=loop,
        )
    return path
