"""The MLP kind (`model.kind: mlp`): the classic script's encoder, Dense layers to the latent
heads, and its mirror as the decoder."""

from __future__ import annotations

import keras

from vae_mnist.common.config import ModelConfig
from vae_mnist.common.mnist import IMAGE_SHAPE, PIXELS


def build_encoder(config: ModelConfig) -> keras.Model:
    """Images (B, 28, 28) -> (z_mean, z_log_var), each (B, latent_dim)."""
    images = keras.Input(shape=IMAGE_SHAPE, name="images")
    h = keras.layers.Flatten()(images)
    for i, units in enumerate(config.mlp.hidden_units):
        h = keras.layers.Dense(units, activation=config.activation, name=f"dense_{i}")(h)
    z_mean = keras.layers.Dense(config.latent_dim, name="z_mean")(h)
    z_log_var = keras.layers.Dense(config.latent_dim, name="z_log_var")(h)
    return keras.Model(images, [z_mean, z_log_var], name="encoder")


def build_decoder(config: ModelConfig) -> keras.Model:
    """Latent codes (B, latent_dim) -> pixel logits (B, 28, 28, 1); the mirror of the encoder."""
    z = keras.Input(shape=(config.latent_dim,), name="z")
    h = z
    for i, units in enumerate(reversed(config.mlp.hidden_units)):
        h = keras.layers.Dense(units, activation=config.activation, name=f"dense_{i}")(h)
    logits = keras.layers.Dense(PIXELS, name="logits")(h)
    logits = keras.layers.Reshape((*IMAGE_SHAPE, 1), name="image_logits")(logits)
    return keras.Model(z, logits, name="decoder")
