"""Tests of metrics.py: the test metrics of a trained model and the numbers of metrics.json.

The IWAE bound's properties, determinism, batching, the summary's keys and rounding, active
units, and which test images evaluation reads."""

from __future__ import annotations

import math

import numpy as np
import pytest
from keras import ops

from tests.support.plugins.configs import Trained
from vae_mnist.evaluation.metrics import (
    ACTIVE_UNIT_THRESHOLD,
    gaussian_log_density,
    iwae_bound,
    log_importance_weights,
    per_image_terms,
    summarise,
)


@pytest.fixture
def data(trained: Trained) -> tuple[np.ndarray, np.ndarray]:
    """The blurry digits the session's model trained on, and their labels (read them only)."""
    return trained.images, trained.labels


@pytest.fixture
def vae(trained: Trained):
    """The session's trained VAE (conftest.trained): TINY, three epochs on the blurry digits."""
    return trained.model


@pytest.fixture
def latent_dim(trained: Trained) -> int:
    return trained.config.model.latent_dim


def value(tensor) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(tensor), dtype=np.float64)


def test_iwae_bound_is_tighter_than_the_elbo_per_image(vae, data) -> None:
    terms = per_image_terms(vae, data[0], k=100, seed=0)
    # as log-likelihood bounds: -neg_iwae >= -neg_elbo, image by image
    assert (terms["neg_iwae"] <= terms["neg_elbo"] + 1e-3).all()
    assert terms["neg_iwae"].mean() < terms["neg_elbo"].mean()


def test_bound_tightens_with_more_samples(vae, data) -> None:
    means = [per_image_terms(vae, data[0], k=k, seed=0)["neg_iwae"].mean() for k in (1, 10, 100)]
    assert means[0] > means[1] > means[2]


def test_one_sample_bound_is_the_elbo_within_noise(vae, data) -> None:
    terms = per_image_terms(vae, data[0], k=1, seed=0)
    spread = terms["neg_elbo"].std() / np.sqrt(len(data[0]))
    assert abs(terms["neg_iwae"].mean() - terms["neg_elbo"].mean()) < 4 * spread + 0.5


def test_same_model_same_numbers(vae, data) -> None:
    first = per_image_terms(vae, data[0], k=20, seed=3)
    second = per_image_terms(vae, data[0], k=20, seed=3)
    for name in first:
        np.testing.assert_array_equal(first[name], second[name])


def test_batches_do_not_change_the_result_size(vae, data, latent_dim: int) -> None:
    terms = per_image_terms(vae, data[0][:7], k=5000, seed=0)  # batch of 3 rows: padded tail
    assert terms["neg_iwae"].shape == (7,) and terms["z_mean"].shape == (7, latent_dim)
    assert np.isfinite(terms["neg_iwae"]).all()


def test_summary_has_every_documented_key(vae, data, latent_dim: int) -> None:
    summary = summarise(per_image_terms(vae, data[0], k=10, seed=0), data[1])
    assert set(summary["test"]) == {
        "reconstruction", "kl", "neg_elbo", "neg_iwae", "iwae_gap", "bits_per_dim", "active_units",
        "mse",
    }  # fmt: skip
    assert summary["test"]["neg_elbo"] == pytest.approx(
        summary["test"]["reconstruction"] + summary["test"]["kl"], abs=1e-3
    )
    assert summary["test"]["iwae_gap"] > 0
    assert 0 <= summary["test"]["active_units"] <= latent_dim
    assert sorted(summary["per_digit"]) == [str(d) for d in range(10)]
    assert set(summary["per_digit"]["3"]) == {
        "reconstruction", "kl", "neg_elbo", "neg_iwae", "iwae_gap", "mse",
    }  # fmt: skip


def test_mse_is_the_error_of_what_the_registered_model_returns(vae, data) -> None:
    """The number a served model is checked against: its own output at the latent mean."""
    from vae_mnist.model.vae import inference_model

    images = data[0][:37]
    served = np.asarray(inference_model(vae)(images))  # what MLflow registers and serves
    expected = ((images[..., None] - served) ** 2).reshape(len(images), -1).mean(axis=1)
    terms = per_image_terms(vae, images, k=7, seed=1)
    np.testing.assert_allclose(terms["mse"], expected, rtol=1e-5)
    summary = summarise(terms, data[1][:37])
    assert summary["test"]["mse"] == pytest.approx(expected.mean(), 1e-5)
    threes = data[1][:37] == 3
    assert summary["per_digit"]["3"]["mse"] == pytest.approx(expected[threes].mean(), 1e-5)


def test_bits_per_dim_comes_from_the_iwae_bound() -> None:
    n = 20
    terms = {
        "reconstruction": np.full(n, 100.0), "kl": np.full(n, 10.0), "neg_elbo": np.full(n, 110.0),
        "neg_iwae": np.full(n, 105.0), "mse": np.full(n, 0.05),
        "z_mean": np.random.default_rng(0).standard_normal((n, 2)).astype(np.float32),
    }  # fmt: skip
    summary = summarise(terms, (np.arange(n) % 10).astype(np.uint8))["test"]
    assert summary["bits_per_dim"] == pytest.approx(105.0 / (784 * np.log(2)), abs=1e-5)


def test_metrics_json_numbers_are_rounded_as_documented() -> None:
    # per-image terms whose means have long decimals: each number is written at its precision
    n = 3
    terms = {
        "reconstruction": np.array([100.0, 100.0, 101.0]), "kl": np.array([10.0, 10.0, 11.0]),
        "neg_elbo": np.array([110.0, 110.0, 112.0]), "neg_iwae": np.array([105.0, 105.0, 106.0]),
        "mse": np.array([0.01, 0.01, 0.02]), "z_mean": np.zeros((n, 2), np.float32),
    }  # fmt: skip
    summary = summarise(terms, np.array([1, 1, 2], np.uint8))
    test = summary["test"]
    assert test["reconstruction"] == 100.3333 and test["kl"] == 10.3333
    assert test["neg_elbo"] == 110.6667 and test["neg_iwae"] == 105.3333
    assert test["iwae_gap"] == 5.3333  # neg_elbo - neg_iwae, the ELBO's shortfall
    assert test["mse"] == 0.0133333  # seven places
    assert test["bits_per_dim"] == round(105.3333333333 / (784 * np.log(2)), 5) == 0.19383
    assert summary["per_digit"]["2"] == {
        "reconstruction": 101.0, "kl": 11.0, "neg_elbo": 112.0, "neg_iwae": 106.0,
        "iwae_gap": 6.0, "mse": 0.02,
    }  # fmt: skip
    assert set(summary["per_digit"]) == {"1", "2"}  # digits with no image are left out


def test_active_units_are_the_latent_dimensions_whose_mean_varies_above_the_threshold() -> None:
    rng = np.random.default_rng(0)
    n = 10_000
    # standard deviations 0.05, 0.2, 1.0: variances 0.0025 (below 0.01), 0.04 and 1.0 (above)
    z_mean = rng.standard_normal((n, 3)) * np.array([0.05, 0.2, 1.0])
    terms = {name: np.ones(n) for name in ("reconstruction", "kl", "neg_elbo", "neg_iwae", "mse")}
    terms["z_mean"] = z_mean.astype(np.float32)
    assert summarise(terms, np.zeros(n, np.uint8))["test"]["active_units"] == 2
    terms["z_mean"] = (z_mean * np.array([1.9, 1.0, 1.0])).astype(np.float32)  # 0.009: still out
    assert summarise(terms, np.zeros(n, np.uint8))["test"]["active_units"] == 2
    terms["z_mean"] = (z_mean * np.array([2.1, 1.0, 1.0])).astype(np.float32)  # 0.011: in
    assert summarise(terms, np.zeros(n, np.uint8))["test"]["active_units"] == 3


def test_a_latent_dimension_whose_variance_is_exactly_the_threshold_is_not_active() -> None:
    """A latent dimension is active only when the variance of its mean is strictly above the
    threshold (Burda et al.'s Cov_x(E[z|x]) > 0.01)."""
    # first column: mean -0.2, variance (4 * 0.05**2 + 0.2**2) / 5 = 0.01 exactly in binary
    # floating point too; second: variance 0.24; third: constant
    z_mean = np.array(
        [
            [-0.25, 0.0, 1.0],
            [-0.25, 1.0, 1.0],
            [-0.25, 0.0, 1.0],
            [-0.25, 1.0, 1.0],
            [0.0, 0.0, 1.0],
        ],
        np.float32,
    )
    assert np.var(z_mean[:, 0].astype(np.float64)) == ACTIVE_UNIT_THRESHOLD
    terms = {name: np.ones(5) for name in ("reconstruction", "kl", "neg_elbo", "neg_iwae", "mse")}
    terms["z_mean"] = z_mean
    assert summarise(terms, np.arange(5, dtype=np.uint8))["test"]["active_units"] == 1


def test_padding_of_the_last_batch_keeps_each_image_with_its_own_terms(vae, data) -> None:
    """kl and mse need no sampling: each image's value must not depend on how it was batched."""
    from keras import ops

    images = data[0][:7]
    terms = per_image_terms(vae, images, k=5000, seed=0)  # batches of 3: one padded at the end
    z_mean, z_log_var = (np.asarray(t) for t in vae.encoder(images))
    expected_kl = -0.5 * np.sum(1 + z_log_var - z_mean**2 - np.exp(z_log_var), axis=-1)
    np.testing.assert_allclose(terms["kl"], expected_kl, rtol=1e-4)
    np.testing.assert_allclose(terms["z_mean"], z_mean, rtol=1e-5)
    served = np.asarray(ops.sigmoid(vae.decoder(z_mean)))[..., 0]
    np.testing.assert_allclose(
        terms["mse"], ((images - served) ** 2).reshape(7, -1).mean(axis=1), rtol=1e-5
    )


def test_evaluation_reads_the_test_images_as_data_binarize_says() -> None:
    from vae_mnist.data.splits import binarize
    from vae_mnist.evaluation.metrics import binarized_test_images

    grey = np.random.default_rng(0).random((200, 28, 28)).astype(np.float32)
    drawn, which = binarized_test_images(grey, "dynamic", seed=3)
    assert set(np.unique(drawn)) == {0.0, 1.0} and "seed 3" in which
    assert abs(drawn.mean() - grey.mean()) < 0.01  # one Bernoulli draw per pixel
    np.testing.assert_array_equal(drawn, binarized_test_images(grey, "dynamic", seed=3)[0])
    assert not np.array_equal(drawn, binarized_test_images(grey, "dynamic", seed=4)[0])
    # the very draw preprocess makes for static binarization, seeded by the seed
    np.testing.assert_array_equal(drawn, binarize(grey, np.random.default_rng(3)))
    assert which == "binarized: one Bernoulli draw per pixel, seed 3"  # metrics.json says
    assert binarized_test_images(grey, "static", seed=3) == (
        grey,
        "binarized in preprocess (static)",
    )
    assert binarized_test_images(grey, "none", seed=3) == (grey, "grey levels in [0, 1]")


def test_a_long_evaluation_shows_its_progress_in_a_log_line_by_line(vae, data, capsys) -> None:
    # k = 5000: a few images per chunk, so many chunks; stderr here is not a terminal (a log)
    per_image_terms(vae, data[0][:40], k=5000, seed=0)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("test images, k = 5000:   0%")
    assert lines[-1].startswith("test images, k = 5000: 100%") and "40/40 [" in lines[-1]
    assert not any("\r" in line for line in lines)


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
