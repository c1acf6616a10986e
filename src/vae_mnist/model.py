"""The VAE: an MLP encoder to a diagonal Gaussian, an MLP decoder to Bernoulli logits.

Keras 3 idioms (as in keras-io's VAE): encoder and decoder are functional models; the VAE is a
`keras.Model` subclass whose `train_step`/`test_step` compute the loss and update `Mean` trackers.
The classic script's `add_loss` on symbolic tensors is what Keras 3 no longer accepts.

The objective is in nats per image: a Bernoulli likelihood on the 784 pixels, computed from
logits so that it stays finite where the decoder is confident, and summed over pixels (not
averaged): the classic script's `binary_crossentropy * 784`, and the unit papers report MNIST
results in.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf
from keras import ops

from vae_mnist.config import ModelConfig
from vae_mnist.data.mnist import IMAGE_SHAPE, PIXELS
from vae_mnist.errors import RESTORE_HINT, DataError
from vae_mnist.outputs import atomic_file


def reconstruction_nats(x, logits):
    """-log p(x|z) per image: sigmoid cross-entropy summed over pixels; x and logits (B, ...)."""
    x = ops.reshape(x, (ops.shape(x)[0], -1))
    logits = ops.reshape(logits, (ops.shape(logits)[0], -1))
    # softplus(l) - x*l == -[x log s(l) + (1-x) log(1-s(l))], without computing log(s(l)).
    return ops.sum(ops.softplus(logits) - x * logits, axis=-1)


def kl_nats(z_mean, z_log_var):
    """KL(N(mean, exp(log_var)) || N(0, I)) per image, in closed form."""
    return -0.5 * ops.sum(1.0 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var), axis=-1)


def build_encoder(config: ModelConfig) -> keras.Model:
    """Images (B, 28, 28) -> (z_mean, z_log_var), each (B, latent_dim)."""
    images = keras.Input(shape=IMAGE_SHAPE, name="images")
    h = keras.layers.Flatten()(images)
    for i, units in enumerate(config.hidden_units):
        h = keras.layers.Dense(units, activation=config.activation, name=f"dense_{i}")(h)
    z_mean = keras.layers.Dense(config.latent_dim, name="z_mean")(h)
    z_log_var = keras.layers.Dense(config.latent_dim, name="z_log_var")(h)
    return keras.Model(images, [z_mean, z_log_var], name="encoder")


def build_decoder(config: ModelConfig) -> keras.Model:
    """Latent codes (B, latent_dim) -> pixel logits (B, 28, 28, 1); the mirror of the encoder."""
    z = keras.Input(shape=(config.latent_dim,), name="z")
    h = z
    for i, units in enumerate(reversed(config.hidden_units)):
        h = keras.layers.Dense(units, activation=config.activation, name=f"dense_{i}")(h)
    logits = keras.layers.Dense(PIXELS, name="logits")(h)
    logits = keras.layers.Reshape((*IMAGE_SHAPE, 1), name="image_logits")(logits)
    return keras.Model(z, logits, name="decoder")


@keras.saving.register_keras_serializable(package="vae_mnist")
class VAE(keras.Model):
    """Calling it returns reconstructions: Bernoulli means (B, 28, 28, 1) decoded from z_mean.

    `beta` weighs the KL term in training (KL warm-up sets it per epoch), and the training `loss`
    is what is minimised; validation and test report the true negative ELBO, at beta = 1.
    """

    def __init__(
        self,
        encoder: keras.Model,
        decoder: keras.Model,
        dynamic_binarization: bool = False,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.encoder = encoder
        self.decoder = decoder
        self.dynamic_binarization = dynamic_binarization
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.beta = keras.Variable(1.0, trainable=False, name="beta", dtype="float32")
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction")
        self.kl_tracker = keras.metrics.Mean(name="kl")

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return [self.loss_tracker, self.reconstruction_tracker, self.kl_tracker]

    def call(self, images, training: bool = False):
        z_mean, _ = self.encoder(images, training=training)
        return ops.sigmoid(self.decoder(z_mean, training=training))

    def draw(self, images):
        """The batch's random draws, made for all of it: its binarization (dynamic only) and
        the latent noise. A part of the batch then takes its rows of both, so that parts computed
        side by side make exactly the draws of the whole (training.replica_step)."""
        if self.dynamic_binarization:
            images = self._binarize(images)
        latent_dim = self.encoder.get_layer("z_mean").units
        noise = keras.random.normal((ops.shape(images)[0], latent_dim), seed=self.seed_generator)
        return images, noise

    def terms(self, images, noise, training: bool):
        """Per-image reconstruction and KL (nats), with the latent noise given."""
        z_mean, z_log_var = self.encoder(images, training=training)
        z = z_mean + ops.exp(0.5 * z_log_var) * noise  # the reparameterisation trick
        logits = self.decoder(z, training=training)
        return reconstruction_nats(images, logits), kl_nats(z_mean, z_log_var)

    def _binarize(self, images):
        # Philox by name: in XLA on the CPU, TensorFlow's default algorithm ("auto_select") takes
        # 45 ms for one batch's draw against Philox's 1.6 ms, and made training with dynamic
        # binarization five times slower than without. Outside XLA the default is Philox.
        seed = tf.cast(tf.math.floormod(self.seed_generator.next(), tf.int32.max - 1), tf.int32)
        draw = tf.random.stateless_uniform(ops.shape(images), seed=seed, alg="philox")
        return ops.cast(draw < images, images.dtype)

    def _track(self, loss, reconstruction, kl) -> dict[str, Any]:
        self.loss_tracker.update_state(loss)
        self.reconstruction_tracker.update_state(reconstruction)
        self.kl_tracker.update_state(kl)
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data):
        images, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return self.step(images)

    def step(self, images):
        """One optimisation step on a batch (training.py runs several per compiled call)."""
        return self.update(*self.draw(images))

    def update(self, images, noise, parts: int = 1):
        """The optimisation step on drawn images and noise: the one definition of it. `parts`:
        the step is one of that many computed side by side whose gradients are then summed (a
        tf.distribute strategy sums its replicas'), so each contributes its share."""
        with tf.GradientTape() as tape:
            reconstruction, kl = self.terms(images, noise, training=True)
            reconstruction, kl = ops.mean(reconstruction), ops.mean(kl)
            loss = reconstruction + self.beta * kl
            objective = loss / parts if parts > 1 else loss
        gradients = tape.gradient(objective, self.trainable_weights)
        self.optimizer.apply(gradients, self.trainable_weights)
        return self._track(loss, reconstruction, kl)

    def test_step(self, data):
        images, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return self.measure(*self.draw(images))

    def measure(self, images, noise):
        """The negative ELBO and its terms, tracked per image: the validation mean is then the
        mean over images however the batches (and a strategy's parts) divide them."""
        reconstruction, kl = self.terms(images, noise, training=False)
        return self._track(reconstruction + kl, reconstruction, kl)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "decoder": keras.saving.serialize_keras_object(self.decoder),
            "dynamic_binarization": self.dynamic_binarization,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> VAE:
        config = dict(config)
        config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        config["decoder"] = keras.saving.deserialize_keras_object(config["decoder"])
        return cls(**config)


def build_vae(config: ModelConfig, dynamic_binarization: bool, seed: int) -> VAE:
    vae = VAE(build_encoder(config), build_decoder(config), dynamic_binarization, seed, name="vae")
    vae.build((None, *IMAGE_SHAPE))
    return vae


def inference_model(vae: VAE) -> keras.Model:
    """A plain functional model, images -> reconstructions, with `encoder` and `decoder` inside.

    Built from standard layers only, so it loads (and `mlflow models serve` runs it) anywhere
    Keras is installed, without this package: what the MLflow registry holds.
    """
    images = keras.Input(shape=IMAGE_SHAPE, name="images")
    z_mean, _ = vae.encoder(images)
    reconstruction = keras.layers.Activation("sigmoid", name="reconstruction")(vae.decoder(z_mean))
    return keras.Model(images, reconstruction, name="vae_reconstruction")


_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry


def save_vae(model: keras.Model, path: Path) -> None:
    """Save as .keras with the same bytes for the same weights, replacing `path` atomically.

    Keras stamps `date_saved` into metadata.json, the save time into each zip entry, and
    `shared_object_id`s that are memory addresses into config.json; all three are normalised.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = path.with_name(f".{path.stem}.raw.keras")  # Keras wants the suffix
    try:
        model.save(raw)
        with atomic_file(path) as staged, zipfile.ZipFile(raw) as source:
            _copy_normalised(source, staged)
    finally:
        raw.unlink(missing_ok=True)


def _copy_normalised(source: zipfile.ZipFile, staged: Path) -> None:
    """The entries of a .keras file, without clocks and addresses."""
    with zipfile.ZipFile(staged, "w") as target:
        for entry in source.infolist():
            content = source.read(entry)
            if entry.filename == "metadata.json":
                metadata = json.loads(content)
                metadata.pop("date_saved", None)
                content = json.dumps(metadata, sort_keys=True).encode()
            elif entry.filename == "config.json":
                content = json.dumps(_renumber_shared_ids(json.loads(content))).encode()
            info = zipfile.ZipInfo(entry.filename, date_time=_EPOCH)
            info.compress_type = entry.compress_type
            info.external_attr = 0o644 << 16
            target.writestr(info, content)


def _renumber_shared_ids(config: Any, ids: dict[int, int] | None = None) -> Any:
    """Replace memory-address `shared_object_id`s by 1, 2, ... in order of appearance."""
    ids = {} if ids is None else ids
    if isinstance(config, dict):
        return {
            key: ids.setdefault(value, len(ids) + 1)
            if key == "shared_object_id"
            else _renumber_shared_ids(value, ids)
            for key, value in config.items()
        }
    if isinstance(config, list):
        return [_renumber_shared_ids(item, ids) for item in config]
    return config


def load_vae(path: Path) -> VAE:
    """Load a model written by `save_vae`, in Keras' safe mode (no arbitrary code).

    A changed byte fails the zip's CRC-32 check, a truncated file fails to open: either way the
    stage that reads the file stops with one line naming it (Keras calls a truncated file "not
    found").
    """
    if not path.is_file():
        raise DataError(f"{path}: no such file (run `dvc repro train`)")
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except (ValueError, OSError, zipfile.BadZipFile, KeyError, EOFError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DataError(f"{path}: not a loadable .keras model ({reason}); {RESTORE_HINT}") from None
