"""The VAE's -ELBO terms are measured at latent codes drawn from the encoder's Gaussian,
z ~ N(z_mean, exp(z_log_var)): the draws spread by the standard deviation exp(log_var / 2)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from vae_mnist.model import VAE

LOG_VAR = float(np.log(4.0))  # every image's code: mean 0, standard deviation 2


def fixed_gaussian_vae() -> VAE:
    """An encoder that gives every image z_mean 0 and z_log_var log 4 (one latent dimension), and
    a decoder whose 784 logits all equal z."""
    images = keras.Input((28, 28), name="images")
    flat = keras.layers.Flatten()(images)
    z_mean = keras.layers.Dense(1, kernel_initializer="zeros", name="z_mean")(flat)
    z_log_var = keras.layers.Dense(
        1, kernel_initializer="zeros", bias_initializer=keras.initializers.Constant(LOG_VAR),
        name="z_log_var",
    )(flat)  # fmt: skip
    z = keras.Input((1,), name="z")
    logits = keras.layers.Dense(784, kernel_initializer="ones", use_bias=False)(z)
    decoder = keras.Model(z, keras.layers.Reshape((28, 28, 1))(logits), name="decoder")
    return VAE(keras.Model(images, [z_mean, z_log_var], name="encoder"), decoder, seed=0)


def test_the_terms_are_measured_at_codes_drawn_with_standard_deviation_exp_half_log_var() -> None:
    vae = fixed_gaussian_vae()
    result = vae.test_step((np.zeros((4096, 28, 28), np.float32),))
    # Blank images: -log p(x|z) = 784 softplus(z), z ~ N(0, 2^2); its mean by Gauss-Hermite.
    nodes, node_weights = np.polynomial.hermite.hermgauss(80)
    expected = 784 * np.sum(node_weights * np.logaddexp(0, 2 * np.sqrt(2) * nodes)) / np.sqrt(np.pi)
    assert float(result["reconstruction"]) == pytest.approx(expected, rel=0.05)  # 4096 draws
    assert float(result["kl"]) == pytest.approx(0.5 * (4 - 1 - np.log(4)), rel=1e-5)
