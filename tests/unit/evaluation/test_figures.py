"""Tests of figures.py: the PNGs' pinned bytes, their style, their memory, a model's figures.

From arrays alone (no model, no MLflow): each PNG's pinned bytes, pixels that the user's
matplotlib settings leave alone, and the memory the latent plane takes. Then the figures the
evaluate stage draws with a model's decoder (stages/evaluate.render_figures).

The figures are documented outputs whose bytes DVC hashes, so a change to any of them (a title,
a size, a colour, which codes a figure decodes) must be deliberate: it fails here until the new
digest is written below. matplotlib and its fonts are pinned by uv.lock; on another platform,
regenerate with `UPDATE_FIGURE_DIGESTS=1 pytest tests/unit/evaluation/test_figures.py -s`.
"""

from __future__ import annotations

import hashlib
import os
import struct
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from matplotlib import cycler

from tests.support.configs import override
from tests.support.data import blurry_digits, write_history
from tests.support.plugins.configs import Trained
from vae_mnist.common.config import Config
from vae_mnist.common.quantities import HISTORY_COLUMNS
from vae_mnist.evaluation import figures
from vae_mnist.evaluation.metrics import per_image_terms, summarise

WEIGHTS = np.random.default_rng(1).normal(size=(3, 28 * 28)).astype(np.float32)


def decode(codes: np.ndarray) -> np.ndarray:
    """A stand-in decoder, (N, d) -> (N, 28, 28): smooth in the code, as a real one is."""
    logits = codes @ WEIGHTS[: codes.shape[1]]
    return (1 / (1 + np.exp(-logits))).reshape(-1, 28, 28)


def inputs(latent_dim: int) -> dict:
    rng = np.random.default_rng(0)
    labels = (np.arange(60) % 10).astype(np.uint8)
    images = rng.random((60, 28, 28)).astype(np.float32)
    z_mean = (rng.normal(size=(60, latent_dim)) + labels[:, None] * 0.3).astype(np.float32)
    per_digit = {str(d): {"neg_elbo": 100.0 + 5 * d} for d in range(10)}
    history = [
        dict(zip(HISTORY_COLUMNS, (1, 200, 190, 10, 199, 189, 10, 0.001, 1), strict=True)),
        dict(zip(HISTORY_COLUMNS, (2, 180, 172, 8, 181, 173, 8, 0.001, 1), strict=True)),
    ]
    chosen = figures.first_of_each_digit(labels)
    return dict(
        images=images,
        labels=labels,
        reconstructed=1 - images[chosen],
        z_mean=z_mean,
        per_digit=per_digit,
        history=history,
    )


EXPECTED = {
    2: {
        "interpolations.png": "b37e9432c929dda4",
        "latent_space.png": "b6c948aa0504ab1f",
        "manifold.png": "f8898ef3bb893e71",
        "per_digit_neg_elbo.png": "2bc4a550886d0f5c",
        "prior_samples.png": "50aaf9addd936db1",
        "reconstructions.png": "3c2589d3b4a6f054",
        "training_curves.png": "0eff3ca0b2996ca3",
    },
    3: {
        "interpolations.png": "47d2e12f3b5dd00b",
        "latent_space.png": "4a5c7aa7e66a848e",
        "manifold.png": "d94868df3be41a43",
        "per_digit_neg_elbo.png": "2bc4a550886d0f5c",
        "prior_samples.png": "225734347f43d54a",
        "reconstructions.png": "3c2589d3b4a6f054",
        "training_curves.png": "0eff3ca0b2996ca3",
    },
}


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk."""
    return struct.unpack(">II", path.read_bytes()[16:24])


PLANE_IMAGES = 3_000  # an N x N float64 matrix of as many would be 72 MB


def peak_bytes(call: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("latent_dim", [2, 3])
def test_every_figure_has_its_pinned_bytes(tmp_path: Path, latent_dim: int) -> None:
    figures.render_all(decode, **inputs(latent_dim), folder=tmp_path, seed=0)
    digests = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()[:16] for p in tmp_path.iterdir()}
    if os.environ.get("UPDATE_FIGURE_DIGESTS"):
        print(f"{latent_dim}: {dict(sorted(digests.items()))},")
    assert digests == EXPECTED[latent_dim]


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


@pytest.mark.parametrize("project", [figures.latent_projection, figures.manifold_codes])
def test_the_latent_plane_takes_memory_in_proportion_to_the_number_of_images(project) -> None:
    """The plane the latent figures show, for a latent space of more than two dimensions: found
    from the (N, d) latent means without an N x N matrix, so that evaluating on the 10,000 test
    images does not allocate 800 MB for it."""
    z_mean = np.random.default_rng(0).normal(size=(PLANE_IMAGES, 3)).astype(np.float32)
    assert peak_bytes(lambda: project(z_mean)) < 4_000_000


@pytest.mark.parametrize("latent_dim", [2, 3])
def test_figures_are_all_there_and_byte_stable(tiny: Config, tmp_path, latent_dim: int) -> None:
    from vae_mnist.model.vae import build_vae
    from vae_mnist.stages.evaluate import render_figures

    config = override(tiny, {"model.latent_dim": latent_dim})
    model = build_vae(config.model, False, seed=0)
    images, labels = blurry_digits()
    terms = per_image_terms(model, images, k=2, seed=0)
    summary = summarise(terms, labels)
    history = write_history(
        tmp_path / "training",
        [(1, 200, 190, 10, 199, 189, 10, 0.001, 1), (2, 180, 172, 8, 181, 173, 8, 0.001, 1)],
    )
    folders = [tmp_path / "a", tmp_path / "b"]
    for folder in folders:
        folder.mkdir()
        render_figures(model, images, labels, terms, summary, history, folder, seed=0)
    names = sorted(p.name for p in folders[0].iterdir())
    assert names == [
        "interpolations.png", "latent_space.png", "manifold.png", "per_digit_neg_elbo.png",
        "prior_samples.png", "reconstructions.png", "training_curves.png",
    ]  # fmt: skip
    for name in names:
        assert (folders[0] / name).read_bytes() == (folders[1] / name).read_bytes(), name
        assert (folders[0] / name).read_bytes()[:4] == b"\x89PNG"


def test_the_reconstructions_figure_shows_the_model_output_under_the_originals(
    trained: Trained, tmp_path
) -> None:
    from vae_mnist.stages.evaluate import render_figures

    vae, images, labels = trained.model, trained.images, trained.labels
    terms = per_image_terms(vae, images, k=2, seed=0)
    history = write_history(tmp_path / "training", [(1, 200, 190, 10, 199, 189, 10, 0.001, 1)])
    (tmp_path / "all").mkdir()
    render_figures(vae, images, labels, terms, summarise(terms, labels), history,
                   tmp_path / "all", seed=0)  # fmt: skip
    chosen = figures.first_of_each_digit(labels)
    outputs = np.asarray(vae(images[chosen]))[..., 0]
    figures.reconstructions(images[chosen], outputs, tmp_path / "expected.png")
    figures.reconstructions(images[chosen], images[chosen], tmp_path / "originals_twice.png")
    made = (tmp_path / "all" / "reconstructions.png").read_bytes()
    assert made == (tmp_path / "expected.png").read_bytes()
    assert made != (tmp_path / "originals_twice.png").read_bytes()
