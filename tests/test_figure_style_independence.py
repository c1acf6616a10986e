"""The figures' pixels come from the project, not from the user's matplotlib settings: a
matplotlibrc (in the working directory, or the user's own) that changes the saved resolution or
the colour cycle leaves every figure's bytes as they are."""

from __future__ import annotations

import struct
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib import cycler

from vae_mnist import figures


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk."""
    return struct.unpack(">II", path.read_bytes()[16:24])


def test_figures_are_saved_at_100_dpi_whatever_savefig_dpi_says(tmp_path: Path) -> None:
    decoded = np.linspace(0, 1, 100 * 28 * 28).reshape(100, 28, 28)
    figures.samples(decoded, tmp_path / "default.png")
    with matplotlib.rc_context({"savefig.dpi": 50}):
        figures.samples(decoded, tmp_path / "low.png")
    assert png_size(tmp_path / "default.png") == png_size(tmp_path / "low.png") == (700, 700)
    assert (tmp_path / "low.png").read_bytes() == (tmp_path / "default.png").read_bytes()


def test_latent_space_colours_each_digit_by_its_own_colour_whatever_the_colour_cycle(
    tmp_path: Path,
) -> None:
    # the digit colours are tab10's, as in the per-digit bar chart, not the style's colour cycle
    rng = np.random.default_rng(0)
    labels = (np.arange(200) % 10).astype(np.uint8)
    z_mean = (rng.normal(size=(200, 2)) + labels[:, None]).astype(np.float32)
    figures.latent_space(z_mean, labels, tmp_path / "default.png")
    with matplotlib.rc_context({"axes.prop_cycle": cycler(color=["black", "red"])}):
        figures.latent_space(z_mean, labels, tmp_path / "restyled.png")
    assert (tmp_path / "restyled.png").read_bytes() == (tmp_path / "default.png").read_bytes()
