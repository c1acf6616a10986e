"""The VAE: an encoder to a diagonal Gaussian, a decoder to Bernoulli logits, whatever the kind.

Keras 3 idioms (as in keras-io's VAE): encoder and decoder are functional models, built by the
module of the model kind (mlp.py); the VAE is a `keras.Model` subclass whose `train_step` and
`test_step` compute the loss and update `Mean` trackers. The classic script's `add_loss` on
symbolic tensors is what Keras 3 no longer accepts.

The objective is in nats per image: a Bernoulli likelihood on the 784 pixels, computed from
logits so that it stays finite where the decoder is confident, and summed over pixels (not
averaged): the classic script's `binary_crossentropy * 784`, and the unit papers report MNIST
results in.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf
from keras import ops

from vae_mnist.common.config import ModelConfig
from vae_mnist.common.mnist import IMAGE_SHAPE
from vae_mnist.model import mlp

# Each model kind (params.yaml's model.kind) and the module that builds its encoder and decoder:
# build_encoder(config) -> images (B, 28, 28) to (z_mean, z_log_var); build_decoder(config) ->
# codes (B, latent_dim) to logits (B, 28, 28, 1). Everything downstream reads the built layers.
KINDS = {"mlp": mlp}


def reconstruction_nats(x, logits):
    """-log p(x|z) per image: sigmoid cross-entropy summed over pixels; x and logits (B, ...)."""
    x = ops.reshape(x, (ops.shape(x)[0], -1))
    logits = ops.reshape(logits, (ops.shape(logits)[0], -1))
    # softplus(l) - x*l == -[x log s(l) + (1-x) log(1-s(l))], without computing log(s(l)).
    return ops.sum(ops.softplus(logits) - x * logits, axis=-1)


def kl_nats(z_mean, z_log_var):
    """KL(N(mean, exp(log_var)) || N(0, I)) per image, in closed form."""
    return -0.5 * ops.sum(1.0 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var), axis=-1)


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
    kind = KINDS[config.kind]
    encoder, decoder = kind.build_encoder(config), kind.build_decoder(config)
    vae = VAE(encoder, decoder, dynamic_binarization, seed, name="vae")
    vae.build((None, *IMAGE_SHAPE))
    return vae


def describe(vae: VAE, kind: str) -> str:
    """The network as its model card names it, read off the built layers whatever the kind:
    each layer's name and output shape, encoder then decoder."""

    def chain(network: keras.Model) -> str:
        return ", ".join(
            f"{layer.name} {'x'.join(str(d) for d in layer.output.shape[1:])}"
            for layer in network.layers
        )

    return f"{kind}: encoder {chain(vae.encoder)}; decoder {chain(vae.decoder)}"


def inference_model(vae: VAE) -> keras.Model:
    """A plain functional model, images -> reconstructions, with `encoder` and `decoder` inside.

    Built from standard layers only, so it loads (and `mlflow models serve` runs it) anywhere
    Keras is installed, without this package: what the MLflow registry holds.
    """
    images = keras.Input(shape=IMAGE_SHAPE, name="images")
    z_mean, _ = vae.encoder(images)
    reconstruction = keras.layers.Activation("sigmoid", name="reconstruction")(vae.decoder(z_mean))
    return keras.Model(images, reconstruction, name="vae_reconstruction")
