"""The plane the latent figures show, for a latent space of more than two dimensions: found from
the (N, d) latent means without an N x N matrix, so that evaluating on the 10,000 test images
does not allocate 800 MB for it."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable

import numpy as np
import pytest

from vae_mnist import figures

N = 3_000  # an N x N float64 matrix would be 72 MB


def peak_bytes(call: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("project", [figures.latent_projection, figures.manifold_codes])
def test_the_latent_plane_takes_memory_in_proportion_to_the_number_of_images(project) -> None:
    z_mean = np.random.default_rng(0).normal(size=(N, 3)).astype(np.float32)
    assert peak_bytes(lambda: project(z_mean)) < 4_000_000
