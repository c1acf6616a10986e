"""What changes over training: the learning rate (a Keras schedule over the steps) and the KL
weight beta (KL warm-up, set per epoch)."""

from __future__ import annotations

import keras

from vae_mnist.common.config import TrainConfig


def learning_rate(
    config: TrainConfig, steps_per_epoch: int
) -> float | keras.optimizers.schedules.LearningRateSchedule:
    if config.lr_schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(
            config.learning_rate, decay_steps=config.epochs * steps_per_epoch
        )
    if config.lr_schedule == "exponential":
        return keras.optimizers.schedules.ExponentialDecay(
            config.learning_rate, decay_steps=steps_per_epoch, decay_rate=config.lr_decay_rate
        )
    return config.learning_rate


def kl_weight(epoch: int, warmup_epochs: int) -> float:
    """beta for epoch `epoch` (from 0): rising linearly to 1 over the warm-up epochs, then 1."""
    return 1.0 if warmup_epochs == 0 else min(1.0, (epoch + 1) / warmup_epochs)
