"""Loss terms against values computed by hand."""

import math

import numpy as np
import pytest
from keras import ops

from vae_mnist.objectives import (
    gaussian_log_density,
    iwae_bound,
    kl_nats,
    log_importance_weights,
    reconstruction_nats,
)


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


def test_gaussian_log_density_by_hand() -> None:
    rng = np.random.default_rng(0)
    z, mean, log_var = (rng.normal(size=(4, 3)).astype(np.float32) for _ in range(3))
    var = np.exp(log_var.astype(np.float64))
    expected = -0.5 * (np.log(2 * np.pi * var) + (z - mean) ** 2 / var).sum(axis=-1)
    np.testing.assert_allclose(value(gaussian_log_density(z, mean, log_var)), expected, rtol=1e-5)
    standard = value(gaussian_log_density(np.zeros((1, 5)), np.zeros((1, 5)), np.zeros((1, 5))))
    assert standard == pytest.approx([-2.5 * math.log(2 * math.pi)])


def test_log_importance_weights_are_log_p_x_z_plus_log_prior_minus_log_posterior() -> None:
    rng = np.random.default_rng(1)
    k, batch, latent = 3, 2, 4
    z = rng.normal(size=(k, batch, latent)).astype(np.float32)
    z_mean = rng.normal(size=(batch, latent)).astype(np.float32)
    z_log_var = rng.normal(size=(batch, latent)).astype(np.float32) * 0.3
    log_px_z = rng.normal(size=(k, batch)).astype(np.float32) - 100

    def log_normal(x, mean, var):
        return -0.5 * (np.log(2 * np.pi * var) + (x - mean) ** 2 / var).sum(axis=-1)

    expected = (
        log_px_z
        + log_normal(z, 0.0, 1.0)
        - log_normal(z, z_mean[None], np.exp(z_log_var.astype(np.float64))[None])
    )
    got = value(log_importance_weights(log_px_z, z, z_mean, z_log_var))
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_iwae_bound_is_the_log_of_the_mean_weight_computed_stably() -> None:
    weights = np.array([[-1.0, -3.0], [-2.0, -3.0], [-4.0, -3.0]])  # (k=3, B=2)
    expected = np.log(np.exp(weights).mean(axis=0))
    np.testing.assert_allclose(value(iwae_bound(weights)), expected, rtol=1e-12)
    assert value(iwae_bound(weights[:1])) == pytest.approx(weights[0])  # k = 1: the ELBO sample
    far = value(iwae_bound(weights - 1000.0))  # exp underflows; log-sum-exp does not
    np.testing.assert_allclose(far, expected - 1000.0, rtol=1e-12)


def test_terms_are_per_image_for_images_of_any_shape() -> None:
    x = np.zeros((2, 4, 4), dtype=np.float32)
    logits = np.stack([np.zeros((4, 4, 1)), np.full((4, 4, 1), 2.0)]).astype(np.float32)
    per_image = value(reconstruction_nats(x, logits))
    assert per_image == pytest.approx([16 * math.log(2), 16 * math.log1p(math.exp(2))], rel=1e-6)
