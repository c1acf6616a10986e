"""Test metrics on a tiny trained model: the IWAE bound's properties, determinism, the keys."""

from __future__ import annotations

import numpy as np
import pytest

from vae_mnist.config import Config
from vae_mnist.fitting import fit_vae
from vae_mnist.metrics import per_image_terms, summarise

from .conftest import override, write_history


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    labels = (np.arange(300) % 10).astype(np.uint8)
    # ten blurry "digits": each class lights its own band of rows, plus noise
    images = rng.random((300, 28, 28)).astype(np.float32) * 0.2
    for i, digit in enumerate(labels):
        images[i, 2 * digit + 4 : 2 * digit + 8] += 0.7
    return np.clip(images, 0, 1), labels


@pytest.fixture(scope="module")
def vae(data: tuple[np.ndarray, np.ndarray]):
    from vae_mnist.config import load_config

    from .conftest import REPO

    config: Config = override(
        load_config(REPO / "params.yaml"),
        {"model.hidden_units": [64, 32], "train.epochs": 3, "train.batch_size": 30},
    )
    return fit_vae(config, data[0], data[0][:60], verbose=0).model


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


def test_batches_do_not_change_the_result_size(vae, data) -> None:
    terms = per_image_terms(vae, data[0][:7], k=5000, seed=0)  # batch of 3 rows: padded tail
    assert terms["neg_iwae"].shape == (7,) and terms["z_mean"].shape == (7, 2)
    assert np.isfinite(terms["neg_iwae"]).all()


def test_summary_has_every_documented_key(vae, data) -> None:
    summary = summarise(per_image_terms(vae, data[0], k=10, seed=0), data[1])
    assert set(summary["test"]) == {
        "reconstruction", "kl", "neg_elbo", "neg_iwae", "iwae_gap", "bits_per_dim", "active_units",
        "mse",
    }  # fmt: skip
    assert summary["test"]["neg_elbo"] == pytest.approx(
        summary["test"]["reconstruction"] + summary["test"]["kl"], abs=1e-3
    )
    assert summary["test"]["iwae_gap"] > 0
    assert 0 <= summary["test"]["active_units"] <= 2
    assert sorted(summary["per_digit"]) == [str(d) for d in range(10)]
    assert set(summary["per_digit"]["3"]) == {
        "reconstruction", "kl", "neg_elbo", "neg_iwae", "iwae_gap", "mse",
    }  # fmt: skip


def test_mse_is_the_error_of_what_the_registered_model_returns(vae, data) -> None:
    """The number a served model is checked against: its own output at the latent mean."""
    from vae_mnist.model import inference_model

    images = data[0][:37]
    served = np.asarray(inference_model(vae)(images))  # what MLflow registers and serves
    expected = ((images[..., None] - served) ** 2).reshape(len(images), -1).mean(axis=1)
    terms = per_image_terms(vae, images, k=7, seed=1)
    np.testing.assert_allclose(terms["mse"], expected, rtol=1e-5)
    summary = summarise(terms, data[1][:37])
    assert summary["test"]["mse"] == pytest.approx(expected.mean(), 1e-5)
    threes = data[1][:37] == 3
    assert summary["per_digit"]["3"]["mse"] == pytest.approx(expected[threes].mean(), 1e-5)


@pytest.mark.parametrize("latent_dim", [2, 3])
def test_figures_are_all_there_and_byte_stable(data, tmp_path, latent_dim: int) -> None:
    from vae_mnist.config import load_config
    from vae_mnist.model import build_vae
    from vae_mnist.stages.evaluate import render_figures

    from .conftest import REPO

    config = override(
        load_config(REPO / "params.yaml"),
        {"model.hidden_units": [16], "model.latent_dim": latent_dim},
    )
    model = build_vae(config.model, False, seed=0)
    images, labels = data
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
    from vae_mnist.data.binarization import binarize
    from vae_mnist.metrics import binarized_test_images

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


def test_the_reconstructions_figure_shows_the_model_output_under_the_originals(
    vae, data, tmp_path
) -> None:
    from vae_mnist import figures
    from vae_mnist.stages.evaluate import render_figures

    images, labels = data
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


def test_a_long_evaluation_shows_its_progress_in_a_log_line_by_line(vae, data, capsys) -> None:
    # k = 5000: a few images per chunk, so many chunks; stderr here is not a terminal (a log)
    per_image_terms(vae, data[0][:40], k=5000, seed=0)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("test images, k = 5000:   0%")
    assert lines[-1].startswith("test images, k = 5000: 100%") and "40/40 [" in lines[-1]
    assert not any("\r" in line for line in lines)
