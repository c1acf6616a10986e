"""Tests of model.py: the VAE's network, its steps, the served model, and its .keras files.

The network the config describes, a train or test step (the loss it tracks, the latent codes it
samples, dynamic binarization), the model MLflow registers and serves, and saving and loading."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import ops

from tests.support.configs import override
from vae_mnist.common.config import Config
from vae_mnist.common.errors import DataError
from vae_mnist.model.files import load_vae, save_vae
from vae_mnist.model.vae import VAE, build_vae, inference_model, kl_nats, reconstruction_nats
from vae_mnist.training.fit import batches, fit_vae


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.random((256, 28, 28)) < 0.2).astype(np.float32)


@pytest.fixture
def vae(tiny: Config) -> VAE:
    """An untrained VAE, for the tests of its files."""
    return build_vae(tiny.model, False, seed=0)


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


# The .keras file is a documented, DVC-hashed output: its layers, their names, the saved
# settings and the byte normalisation are pinned here through a seeded, untrained model (a new
# digest must be deliberate; on another platform, print it and compare the unzipped configs).
BUILT_MODEL_SHA256 = "f5009eec28ae83b7"


def value(tensor) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(tensor), dtype=np.float64)


def test_shapes_follow_the_config(tiny: Config) -> None:
    vae = build_vae(tiny.model, False, seed=0)
    x = np.zeros((5, 28, 28), np.float32)
    z_mean, z_log_var = vae.encoder(x)
    assert z_mean.shape == z_log_var.shape == (5, 3)
    assert vae.decoder(z_mean).shape == (5, 28, 28, 1)
    reconstruction = np.asarray(vae(x))
    assert reconstruction.shape == (5, 28, 28, 1)
    assert ((reconstruction > 0) & (reconstruction < 1)).all()
    dense = [layer.units for layer in vae.encoder.layers if isinstance(layer, keras.layers.Dense)]
    assert dense == [32, 16, 3, 3]


def test_default_network_is_the_classic_one(config: Config) -> None:
    vae = build_vae(config.model, False, seed=0)
    decoder = [layer.units for layer in vae.decoder.layers if isinstance(layer, keras.layers.Dense)]
    assert decoder == [128, 256, 512, 784]
    assert sum(int(np.prod(w.shape)) for w in vae.trainable_weights) == 1_133_844


def test_the_served_model_is_named_and_holds_encoder_decoder_and_reconstruction(
    tiny: Config,
) -> None:
    """The model MLflow registers and serves: its name, its layers and its output's name are part
    of what a user of the registry sees (and of the saved model's config)."""
    served = inference_model(build_vae(tiny.model, False, seed=0))
    assert served.name == "vae_reconstruction"
    assert [layer.name for layer in served.layers] == [
        "images",
        "encoder",
        "decoder",
        "reconstruction",
    ]
    assert served.output_names == ["reconstruction"]
    assert served.get_config()["output_layers"] == ["reconstruction", 0, 0]  # what is saved
    assert served(np.zeros((2, 28, 28), np.float32)).shape == (2, 28, 28, 1)


def test_one_train_step_lowers_the_loss(tiny: Config, images: np.ndarray) -> None:
    vae = build_vae(tiny.model, False, seed=0)
    vae.compile(optimizer=keras.optimizers.Adam(1e-3))
    batch = images[:64]
    before = float(vae.test_on_batch(batch, return_dict=True)["loss"])
    vae.train_on_batch(batch)
    after = float(vae.test_on_batch(batch, return_dict=True)["loss"])
    assert after < before


def test_validation_is_the_mean_over_images_however_the_batches_split(tiny: Config) -> None:
    """70 images in batches of 32, 32 and 6: a mean of the batch means would weigh each of
    the last 6 images five times as much as the others."""
    keras.utils.set_random_seed(0)
    vae = build_vae(tiny.model, False, seed=0)
    vae.encoder.get_layer("z_log_var").bias.assign(np.full(3, -30.0, np.float32))  # no noise
    density = np.linspace(0.05, 0.6, 70)[:, None, None]  # the later images cost more nats
    images = (np.random.default_rng(1).random((70, 28, 28)) < density).astype(np.float32)
    for batch in batches(images, 32, seed=None):
        vae.test_step((batch,))
    z_mean, z_log_var = vae.encoder(images)
    per_image = reconstruction_nats(images, vae.decoder(z_mean)) + kl_nats(z_mean, z_log_var)
    assert float(vae.loss_tracker.result()) == pytest.approx(float(np.mean(per_image)), rel=1e-5)


def test_the_terms_are_measured_at_codes_drawn_with_standard_deviation_exp_half_log_var() -> None:
    """The VAE's -ELBO terms are measured at latent codes drawn from the encoder's Gaussian,
    z ~ N(z_mean, exp(z_log_var)): the draws spread by the standard deviation exp(log_var / 2)."""
    vae = fixed_gaussian_vae()
    result = vae.test_step((np.zeros((4096, 28, 28), np.float32),))
    # Blank images: -log p(x|z) = 784 softplus(z), z ~ N(0, 2^2); its mean by Gauss-Hermite.
    nodes, node_weights = np.polynomial.hermite.hermgauss(80)
    expected = 784 * np.sum(node_weights * np.logaddexp(0, 2 * np.sqrt(2) * nodes)) / np.sqrt(np.pi)
    assert float(result["reconstruction"]) == pytest.approx(expected, rel=0.05)  # 4096 draws
    assert float(result["kl"]) == pytest.approx(0.5 * (4 - 1 - np.log(4)), rel=1e-5)


def test_dynamic_binarization_draws_zeros_and_ones(tiny: Config) -> None:
    vae = build_vae(tiny.model, True, seed=0)
    grey = np.full((64, 28, 28), 0.3, np.float32)
    drawn = np.asarray(vae._binarize(grey))
    assert set(np.unique(drawn).tolist()) == {0.0, 1.0}
    assert drawn.mean() == pytest.approx(0.3, abs=0.01)


def test_a_blank_pixel_is_never_inked_and_a_full_one_always_is(config: Config) -> None:
    """Dynamic binarization inks a pixel with probability exactly its intensity: a blank pixel is
    never inked, a fully inked one always is, even where the uniform draw is exactly 0."""
    small = override(config, {"model.mlp.hidden_units": [8], "model.latent_dim": 2})
    vae = build_vae(small.model, True, seed=5)  # its first draw of this shape holds an exact 0.0
    images = np.zeros((1024, 28, 28), np.float32)
    images[:512] = 1.0  # the exact 0.0 falls on a blank image (number 566)
    drawn = np.asarray(vae._binarize(images))
    assert drawn.dtype == np.float32
    assert drawn[:512].all()
    assert not drawn[512:].any()


@pytest.mark.parametrize("step", ["train_step", "test_step"])
def test_dynamic_binarization_draws_afresh_in_every_train_and_test_step(
    tiny: Config, step: str
) -> None:
    """With the latent noise off (sigma ~ 1e-7) and confident logits, a step's reconstruction
    term on one grey batch changes from call to call only through a fresh Bernoulli draw, and
    the draws follow the seed."""
    grey = np.full((32, 28, 28), 0.5, np.float32)

    def two_steps(dynamic: bool, seed: int) -> list[float]:
        keras.utils.set_random_seed(0)  # the same initial weights every time
        vae = build_vae(tiny.model, dynamic, seed=seed)
        vae.compile(optimizer=keras.optimizers.SGD(0.0))  # a train step leaves the weights be
        vae.encoder.get_layer("z_log_var").bias.assign(np.full(3, -30.0, np.float32))
        vae.decoder.get_layer("logits").bias.assign(np.full(784, 4.0, np.float32))
        values = []
        for _ in range(2):
            vae.reset_metrics()
            values.append(float(getattr(vae, step)((grey,))["reconstruction"]))
        return values

    fixed, drawn = two_steps(False, seed=0), two_steps(True, seed=0)
    assert abs(fixed[0] - fixed[1]) < 1e-3  # the same batch, the same targets
    assert abs(drawn[0] - drawn[1]) > 0.5  # ~14 nats expected: each call drew its own 0s and 1s
    assert two_steps(True, seed=0) == drawn  # the same seed, the same draws
    assert two_steps(True, seed=1) != drawn


def test_save_load_round_trip_and_stable_bytes(
    tiny: Config, images: np.ndarray, tmp_path: Path
) -> None:
    trained = fit_vae(tiny, images, images[:64], verbose=0).model
    first, second = tmp_path / "a.keras", tmp_path / "b.keras"
    save_vae(trained, first)
    save_vae(trained, second)
    assert first.read_bytes() == second.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.keras", "b.keras"]
    loaded = load_vae(first)
    np.testing.assert_array_equal(np.asarray(loaded(images[:8])), np.asarray(trained(images[:8])))
    np.testing.assert_array_equal(
        np.asarray(inference_model(loaded)(images[:8])), np.asarray(trained(images[:8]))
    )
    served = inference_model(loaded)  # what the registry holds: its input keeps its name
    assert [t.name for t in served.inputs] == ["images"]


def test_a_seeded_model_saves_to_pinned_bytes(tiny: Config, tmp_path: Path) -> None:
    keras.backend.clear_session()  # layer-name counters and the global seed, as in a fresh stage
    keras.utils.set_random_seed(0)
    vae = build_vae(tiny.model, True, seed=3)
    save_vae(vae, tmp_path / "vae.keras")
    digest = hashlib.sha256((tmp_path / "vae.keras").read_bytes()).hexdigest()[:16]
    assert digest == BUILT_MODEL_SHA256
    loaded = load_vae(tmp_path / "vae.keras")
    assert (loaded.dynamic_binarization, loaded.seed) == (True, 3)
    assert [layer.name for layer in loaded.encoder.layers] == [
        "images", "flatten", "dense_0", "dense_1", "z_mean", "z_log_var",
    ]  # fmt: skip


def test_save_vae_makes_every_missing_folder_of_its_path(vae: VAE, tmp_path: Path) -> None:
    path = tmp_path / "models" / "latest" / "vae.keras"
    save_vae(vae, path)
    assert [p.name for p in path.parent.iterdir()] == ["vae.keras"]
    x = np.full((2, 28, 28), 0.5, np.float32)
    np.testing.assert_array_equal(np.asarray(load_vae(path)(x)), np.asarray(vae(x)))


def test_a_failed_keras_save_raises_its_own_error_and_leaves_nothing(
    vae: VAE, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_space(self: keras.Model, filepath: Path, *args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(VAE, "save", no_space)
    with pytest.raises(OSError, match="No space left on device"):
        save_vae(vae, tmp_path / "vae.keras")
    assert list(tmp_path.iterdir()) == []


def test_load_vae_refuses_a_file_holding_python_code(tmp_path: Path) -> None:
    x = keras.Input((3,), name="x")
    keras.Model(x, keras.layers.Lambda(lambda t: t * 2.0)(x)).save(tmp_path / "lambda.keras")
    with pytest.raises(DataError, match="`Lambda` layer whose `function` is a Python lambda"):
        load_vae(tmp_path / "lambda.keras")


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


def test_terms_are_per_image_for_images_of_any_shape() -> None:
    x = np.zeros((2, 4, 4), dtype=np.float32)
    logits = np.stack([np.zeros((4, 4, 1)), np.full((4, 4, 1), 2.0)]).astype(np.float32)
    per_image = value(reconstruction_nats(x, logits))
    assert per_image == pytest.approx([16 * math.log(2), 16 * math.log1p(math.exp(2))], rel=1e-6)
