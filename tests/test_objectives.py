"""Loss terms against values computed by hand."""

import math

import numpy as np
import pytest
from keras import ops

from vae_mnist.objectives import kl_nats, reconstruction_nats


def value(tensor) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(tensor), dtype=np.float64)


def test_reconstruction_by_hand() -> None:
    x = np.array([[0.0, 1.0, 0.5]], dtype=np.float32)
    logits = np.array([[0.0, 2.0, -1.0]], dtype=np.float32)
    # -log p per pixel: ln 2; ln(1 + e^-2); 0.5 * ln(1 + e^1) + 0.5 * ln(1 + e^-1)
    expected = (
        math.log(2)
        + math.log1p(math.exp(-2))
        + 0.5 * (math.log1p(math.e) + math.log1p(math.exp(-1)))
    )
    assert value(reconstruction_nats(x, logits)) == pytest.approx([expected], rel=1e-6)


def test_reconstruction_sums_over_pixels_per_image() -> None:
    x = np.zeros((3, 28, 28), dtype=np.float32)
    logits = np.zeros((3, 28, 28, 1), dtype=np.float32)
    assert value(reconstruction_nats(x, logits)) == pytest.approx([784 * math.log(2)] * 3)


def test_reconstruction_matches_the_naive_formula_and_stays_finite() -> None:
    rng = np.random.default_rng(0)
    x = rng.random((4, 50), dtype=np.float32)
    logits = rng.normal(0, 3, (4, 50)).astype(np.float32)
    p = 1 / (1 + np.exp(-logits.astype(np.float64)))
    naive = -(x * np.log(p) + (1 - x) * np.log(1 - p)).sum(axis=1)
    assert value(reconstruction_nats(x, logits)) == pytest.approx(naive, rel=1e-5)
    extreme = np.array([[100.0, -100.0]], dtype=np.float32)  # naive: log(0) = -inf
    assert value(reconstruction_nats(np.array([[0.0, 1.0]], np.float32), extreme)) == (
        pytest.approx([200.0])
    )


def test_kl_of_the_prior_is_zero() -> None:
    zeros = np.zeros((5, 2), dtype=np.float32)
    assert value(kl_nats(zeros, zeros)) == pytest.approx([0.0] * 5, abs=1e-7)


def test_kl_by_hand() -> None:
    z_mean = np.array([[1.0, 0.0]], dtype=np.float32)
    z_log_var = np.array([[0.0, math.log(2)]], dtype=np.float32)
    # 0.5 * (mu^2) + 0.5 * (sigma^2 - 1 - ln sigma^2)
    expected = 0.5 + 0.5 * (2 - 1 - math.log(2))
    assert value(kl_nats(z_mean, z_log_var)) == pytest.approx([expected], rel=1e-6)
