"""The figures from arrays alone (no model, no MLflow): each PNG's bytes are pinned.

The figures are documented outputs whose bytes DVC hashes, so a change to any of them (a title,
a size, a colour, which codes a figure decodes) must be deliberate: it fails here until the new
digest is written below. matplotlib and its fonts are pinned by uv.lock; on another platform,
regenerate with `UPDATE_FIGURE_DIGESTS=1 pytest tests/test_figures.py -s`.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

from vae_mnist import figures
from vae_mnist.quantities import HISTORY_COLUMNS

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


@pytest.mark.parametrize("latent_dim", [2, 3])
def test_every_figure_has_its_pinned_bytes(tmp_path: Path, latent_dim: int) -> None:
    figures.render_all(decode, **inputs(latent_dim), folder=tmp_path, seed=0)
    digests = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()[:16] for p in tmp_path.iterdir()}
    if os.environ.get("UPDATE_FIGURE_DIGESTS"):
        print(f"{latent_dim}: {dict(sorted(digests.items()))},")
    assert digests == EXPECTED[latent_dim]
