"""Training the VAE, top to bottom (`fit_vae`): determinism, the data, the epochs' bookkeeping
(callbacks.py, schedules.py), the compiled model, the fit, the saved model.

No MLflow: the train stage (stages/train.py) gives it arrays, callbacks, a strategy
(distribution.start) and where to save, and logs what it returns.

Speed comes from keeping the data resident as a tensor and running STEPS_PER_CALL optimisation
steps inside each XLA-compiled call (`run_groups`: a loop over a group of batches): with one call
per step, the launches, the per-batch pulls from tf.data and Keras' bookkeeping cost about half
as much again as the arithmetic of this small MLP. benchmarks/train_throughput.py measures the
choice against the GEMM limit, the per-step trainer and a plain `model.fit`.

Under a tf.distribute strategy Keras' `fit` does not serve (`fit_replicated` says why): the same
step runs on each replica, through the same Keras callbacks.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from vae_mnist.common.config import Config, TrainConfig
from vae_mnist.common.errors import ConfigError
from vae_mnist.common.quantities import EPOCH_NAMES, VAL, VAL_NEG_ELBO, at_best, metric
from vae_mnist.model.files import save_vae
from vae_mnist.model.vae import VAE, build_vae, inference_model
from vae_mnist.training.callbacks import EpochRecorder, early_stopping
from vae_mnist.training.schedules import learning_rate

JIT_COMPILE = True
STEPS_PER_CALL = 32  # optimisation steps inside one compiled call (step_groups)
STEPS_PER_EXECUTION = 16  # compiled calls per call from Python: validation batches, groups
VAL_SUMMARY = ("neg_elbo", "reconstruction", "kl")  # the validation terms a train run reports


def make_deterministic(seed: int) -> None:
    """One seed for Python, NumPy and TensorFlow; deterministic kernels."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def batches(images: np.ndarray, batch_size: int, seed: int | None) -> tf.data.Dataset:
    """Batches gathered from one resident tensor.

    Seeded (training): reshuffled every epoch, and only full batches, so that one compiled step
    serves every batch (a ragged last batch costs a second XLA compilation; the images it would
    hold are drawn into full batches in other epochs). Unseeded (validation): every image, in order.

    tf.data's autotuner is off and the sizes are fixed: with it on, most epochs here began with
    both cores idle for about 4.5 s (10 s epochs instead of 5.5 s), and a gather of one batch
    needs no tuning.
    """
    data = tf.constant(images)
    indices = tf.data.Dataset.range(len(images))
    if seed is not None:
        indices = indices.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    batched = indices.batch(batch_size, drop_remainder=seed is not None)
    options = tf.data.Options()
    options.autotune.enabled = False
    return batched.map(lambda idx: tf.gather(data, idx)).prefetch(2).with_options(options)


def step_groups(
    images: np.ndarray, batch_size: int, seed: int, steps_per_call: int
) -> tf.data.Dataset:
    """Training input: each element `(batches, count)` holds `steps_per_call` full batches,
    gathered from one resident tensor and reshuffled every epoch as `batches` does, of which the
    first `count` are real: an epoch's last group is padded, so that one compiled program of
    fixed shapes serves every group (VAE.train_step runs `count` steps on it)."""
    data = tf.constant(images)
    indices = tf.data.Dataset.range(len(images))
    indices = indices.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    groups = indices.batch(batch_size, drop_remainder=True).batch(steps_per_call)
    shape = (steps_per_call, batch_size, *images.shape[1:])

    def gather(group: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        count = tf.shape(group)[0]
        padded = tf.pad(group, [[0, steps_per_call - count], [0, 0]])
        return tf.ensure_shape(tf.gather(data, padded), shape), tf.cast(count, tf.int32)

    options = tf.data.Options()
    options.autotune.enabled = False
    return groups.map(gather).prefetch(2).with_options(options)


@dataclass
class Trained:
    model: VAE
    served: keras.Model  # what the registry holds (model.inference_model): standard layers only
    history: list[dict[str, float]]  # one row per epoch, keyed by HISTORY_COLUMNS
    best_epoch: int
    summary: dict[str, float] = field(init=False)  # what the train run reports of the model

    def __post_init__(self) -> None:
        best = self.best()
        self.summary = {
            "best_epoch": self.best_epoch,
            "epochs_trained": len(self.history),
            **{at_best(metric(VAL, q)): best[metric(VAL, q)] for q in VAL_SUMMARY},
        }

    def best(self) -> dict[str, float]:
        """The best epoch's row: the weights the model holds."""
        return self.history[self.best_epoch - 1]


def check_batch_size(config: TrainConfig, train_images: int) -> None:
    """Training uses full batches only, so it needs at least one."""
    if train_images < config.batch_size:
        raise ConfigError(
            f"train.batch_size = {config.batch_size} is larger than the "
            f"{train_images} training images"
        )


def compile_vae(config: Config, steps_per_epoch: int) -> VAE:
    """A fresh VAE compiled the way training runs it: Adam, XLA, several steps per call. Its
    initial weights come from the global seed (make_deterministic)."""
    rate = learning_rate(config.train, steps_per_epoch)
    model = build_vae(config.model, config.data.binarize == "dynamic", config.seed)
    model.compile(optimizer=keras.optimizers.Adam(rate), steps_per_execution=STEPS_PER_EXECUTION)
    # Keras turns XLA off whenever op determinism is on, for the sake of GPU kernels, and both
    # public ways in (`compile(jit_compile=True)` and the `jit_compile` setter) refuse it then;
    # XLA on the CPU is deterministic (tests/unit/training/test_training.py trains twice and
    # compares the weights).
    model._jit_compile = JIT_COMPILE
    return model


def run_groups(model: VAE) -> None:
    """Make Keras' `fit` run one group of batches per compiled call (what `step_groups` yields:
    `(batches, count)`), one optimisation step for each of its first `count` batches, in a loop
    inside the call. Set on this model object for this fit: the VAE class, and the saved
    model, keep Keras' one step per batch."""

    def train_step(data: tuple[tf.Tensor, tf.Tensor]) -> dict[str, tf.Tensor]:
        group, count = data

        def step(index: tf.Tensor) -> tuple[tf.Tensor]:
            model.step(group[index])
            return (index + 1,)

        tf.while_loop(lambda index: index < count, step, (tf.constant(0),))
        return {m.name: m.result() for m in model.metrics}

    model.train_step = train_step


def replica_rows(rows: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor] | None:
    """This replica's rows `[start, stop)` of a global batch of `rows` images, in replica order
    and as even as they divide; None on one device (all of them)."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return None
    index, count = context.replica_id_in_sync_group, context.num_replicas_in_sync
    return rows * index // count, rows * (index + 1) // count


def replica_step(model: VAE, images: tf.Tensor, train: bool = True) -> dict[str, tf.Tensor]:
    """The one-device step (or validation) of a global batch, as one replica's share of it: every
    replica makes the draws one device would make for the whole batch, from the same seed state,
    and keeps its own rows, so R replicas compute exactly the one-device step, whatever R is."""
    images, noise = model.draw(images)
    share = replica_rows(ops.shape(images)[0])
    parts = 1
    if share is not None:
        images, noise = images[share[0] : share[1]], noise[share[0] : share[1]]
        parts = tf.distribute.get_replica_context().num_replicas_in_sync
    return model.update(images, noise, parts) if train else model.measure(images, noise)


def fit_replicated(
    model: VAE,
    strategy: tf.distribute.Strategy,
    train_data: tf.data.Dataset,
    val_data: tf.data.Dataset,
    epochs: int,
    callbacks: Sequence[keras.callbacks.Callback],
    verbose: bool,
) -> None:
    """What Keras' `fit` does here, minus what the strategies cannot carry: `fit` breaks under
    MultiWorkerMirroredStrategy (keras-team/keras#20585) and, under MirroredStrategy, refuses XLA
    and several steps per call; TensorFlow's supported path is a loop that calls `strategy.run`
    on the model's own step. One epoch per compiled call; every worker iterates the same seeded
    datasets, so every worker sees the same batches."""

    @tf.function
    def train_epoch(batches: tf.data.Iterator, steps: tf.Tensor) -> None:
        for _ in tf.range(steps):
            strategy.run(replica_step, args=(model, next(batches)))

    @tf.function
    def validate(dataset: tf.data.Dataset) -> None:
        for images in dataset:
            strategy.run(replica_step, args=(model, images, False))

    # Reading the trackers reduces them over every replica and worker, and so does zeroing
    # them; both run compiled: eagerly, TensorFlow starts a thread pool for each reduction.
    @tf.function
    def results() -> dict[str, tf.Tensor]:
        return {tracker.name: tracker.result() for tracker in model.metrics}

    @tf.function
    def reset() -> None:
        for tracker in model.metrics:
            tracker.reset_state()

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


def fit_vae(
    config: Config,
    train_images: np.ndarray,
    val_images: np.ndarray,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    strategy: tf.distribute.Strategy | None = None,
    save_to: Path | None = None,
    verbose: int | str = 2,
) -> Trained:
    """Train a fresh VAE as `config` says, with Keras' fit on one device or, given a strategy,
    with its replicas (fit_replicated), and save it to `save_to` (none: not saved); same config,
    data and topology -> the same weights, and the same bytes."""
    batch_size, epochs = config.train.batch_size, config.train.epochs
    check_batch_size(config.train, len(train_images))
    make_deterministic(config.seed)  # first: the datasets' shuffles take the global seed too

    # The data: batches gathered from resident tensors, the training ones reshuffled each epoch
    # (the same order in groups for Keras' fit and one batch at a time for the replicas).
    if strategy is None:
        train_data = step_groups(train_images, batch_size, config.seed, STEPS_PER_CALL)
    else:
        train_data = batches(train_images, batch_size, config.seed)
    val_data = batches(val_images, batch_size, seed=None)

    # The epochs: beta and the learning rate recorded in each epoch's logs, early stopping.
    recorder = EpochRecorder(config.train.kl_warmup_epochs)
    listeners = [recorder, *early_stopping(config.train), *callbacks]

    # The model, compiled; under a strategy, its variables and the optimizer's are mirrored.
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        model = compile_vae(config, len(train_images) // batch_size)
        model.optimizer.build(model.trainable_variables)

    # The fit.
    if strategy is not None:
        fit_replicated(model, strategy, train_data, val_data, epochs, listeners, bool(verbose))
    else:
        run_groups(model)
        model.fit(
            train_data,
            validation_data=val_data,
            epochs=epochs,
            callbacks=listeners,
            shuffle=False,  # the dataset reshuffles itself, seeded
            verbose=verbose,
        )
    history = [
        {"epoch": row["epoch"], **{EPOCH_NAMES[k]: row[k] for k in EPOCH_NAMES if k in row}}
        for row in recorder.rows
    ]
    stopped = config.train.early_stopping_patience > 0  # the best epoch's weights restored
    best = min(history, key=lambda row: row[VAL_NEG_ELBO])["epoch"] if stopped else len(history)

    # The saved model: the served model the registry holds, and the checkpoint, bit for bit.
    served = inference_model(model)
    if save_to is not None:
        save_vae(model, save_to)
    return Trained(model, served, history, int(best))
