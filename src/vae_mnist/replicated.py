"""The training loop a tf.distribute strategy runs: what Keras' `fit` does here, minus what the
strategies cannot carry.

Keras' `fit` breaks under MultiWorkerMirroredStrategy (keras-team/keras#20585) and, under
MirroredStrategy, refuses XLA and several steps per call; TensorFlow's supported path is a loop
that calls `strategy.run` on the model's own step. So both strategies run the same `VAE.step`
and `VAE.test_step` as Keras' fit, one epoch per compiled call, through the same Keras callbacks
(KL warm-up, early stopping, the history and MLflow loggers).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

import keras
import tensorflow as tf

from vae_mnist.model import VAE


def fit_replicated(
    model: VAE,
    strategy: tf.distribute.Strategy,
    train_data: tf.data.Dataset,
    val_data: tf.data.Dataset,
    epochs: int,
    callbacks: Sequence[keras.callbacks.Callback],
    verbose: bool,
) -> None:
    """Train `model` (built in `strategy.scope()`) for `epochs`: every replica is handed each
    global batch and trains on its share (VAE.step); validation likewise (VAE.test_step). Every
    worker iterates the same seeded datasets, so every worker sees the same batches."""

    @tf.function
    def train_epoch(batches: tf.data.Iterator, steps: tf.Tensor) -> None:
        for _ in tf.range(steps):
            strategy.run(model.step, args=(next(batches),))

    @tf.function
    def validate(dataset: tf.data.Dataset) -> None:
        for images in dataset:
            strategy.run(model.test_step, args=(images,))

    # Reading the trackers reduces them over every replica and worker, and so does zeroing
    # them; both run compiled: eagerly, TensorFlow starts a thread pool for each reduction.
    @tf.function
    def results() -> dict[str, tf.Tensor]:
        return {metric.name: metric.result() for metric in model.metrics}

    @tf.function
    def reset() -> None:
        for metric in model.metrics:
            metric.reset_state()

    steps = tf.constant(int(train_data.cardinality()), tf.int64)
    listeners = keras.callbacks.CallbackList(list(callbacks), model=model)
    model.stop_training = False
    listeners.on_train_begin()
    for epoch in range(epochs):
        started = time.monotonic()
        listeners.on_epoch_begin(epoch)
        reset()
        train_epoch(iter(train_data), steps)
        logs = {name: float(value) for name, value in results().items()}
        reset()
        validate(val_data)
        logs.update({f"val_{name}": float(value) for name, value in results().items()})
        listeners.on_epoch_end(epoch, logs)
        if verbose:
            shown = " - ".join(f"{name}: {value:.4f}" for name, value in sorted(logs.items()))
            elapsed = time.monotonic() - started
            print(f"Epoch {epoch + 1}/{epochs} - {elapsed:.0f}s - {shown}", file=sys.stdout)
        if model.stop_training:
            break
    listeners.on_train_end()
