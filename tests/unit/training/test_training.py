"""Tests of training.py: the training loop, on tiny synthetic data.

The batches and groups of steps an epoch trains on, the VAE that training compiles, determinism,
the history, β warm-up, learning-rate schedules, early stopping and the best epoch, and what
training prints."""

from __future__ import annotations

import re

import keras
import numpy as np
import pytest

from tests.support.configs import override
from vae_mnist.common.config import Config
from vae_mnist.common.errors import ConfigError, Diverged
from vae_mnist.common.quantities import EPOCH_NAMES, HISTORY_COLUMNS
from vae_mnist.model.vae import build_vae
from vae_mnist.training.callbacks import EpochRecorder
from vae_mnist.training.fit import (
    STEPS_PER_EXECUTION,
    batches,
    check_batch_size,
    compile_vae,
    fit_vae,
    make_deterministic,
    run_groups,
    step_groups,
)


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.random((256, 28, 28)) < 0.2).astype(np.float32)


def weights(model: keras.Model) -> list[np.ndarray]:
    return [np.asarray(w) for w in model.get_weights()]


def image_ids(dataset) -> list[list[int]]:
    """Each batch as the ids of its images (the first pixel holds an image's id)."""
    return [[int(i) for i in batch[:, 0, 0]] for batch in dataset.as_numpy_iterator()]


ID_IMAGES = np.arange(100, dtype=np.float32)[:, None, None] * np.ones((1, 28, 28), np.float32)


BATCH = 16


STEPS = 7  # per epoch (120 images): groups of 3 make 3 + 3 + 1, the last padded with two


@pytest.fixture(scope="module")
def ragged_images() -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.random((STEPS * BATCH + 8, 28, 28), dtype=np.float32)  # 8 left out: ragged


def fitted(config: Config, images: np.ndarray, steps_per_call: int | None) -> keras.Model:
    make_deterministic(config.seed)
    model = compile_vae(config, STEPS)
    if steps_per_call is None:
        data = batches(images, BATCH, seed=config.seed)
    else:
        data = step_groups(images, BATCH, config.seed, steps_per_call)
        run_groups(model)
    model.fit(data, epochs=config.train.epochs, shuffle=False, verbose=0)
    return model


EPOCH_LINE = re.compile(r"1/1 - \d+s - \d+m?s/step - .*- loss: \d+\.\d{4} - .*val_loss: \d+\.\d{4}")


def test_training_batches_are_full_and_reshuffled_each_epoch() -> None:
    dataset = batches(ID_IMAGES, 32, seed=7)
    first, second = image_ids(dataset), image_ids(dataset)
    for epoch in (first, second):
        assert [len(batch) for batch in epoch] == [32, 32, 32]  # no ragged last batch
        drawn = [i for batch in epoch for i in batch]
        assert len(set(drawn)) == 96 and set(drawn) <= set(range(100))
    assert first != second  # reshuffled
    assert image_ids(batches(ID_IMAGES, 32, seed=7)) == first  # seeded: the same order again


def test_validation_batches_hold_every_image_in_order() -> None:
    in_order = image_ids(batches(ID_IMAGES, 32, seed=None))
    assert [len(batch) for batch in in_order] == [32, 32, 32, 4]
    assert [i for batch in in_order for i in batch] == list(range(100))


def test_an_epochs_groups_hold_every_full_batch_once_then_padding(
    ragged_images: np.ndarray,
) -> None:
    groups = list(step_groups(ragged_images, BATCH, seed=0, steps_per_call=3).as_numpy_iterator())
    assert [int(count) for _, count in groups] == [3, 3, 1]
    assert all(group.shape == (3, BATCH, 28, 28) for group, _ in groups)
    trained = np.concatenate([group[:count] for group, count in groups])
    per_step = np.stack(list(batches(ragged_images, BATCH, seed=0).as_numpy_iterator()))
    np.testing.assert_array_equal(trained, per_step)  # the same batches, in the same order


@pytest.mark.parametrize("binarize", ["none", "dynamic"])
def test_groups_of_steps_give_the_weights_of_one_step_per_call(
    tiny: Config, ragged_images: np.ndarray, binarize: str
) -> None:
    run = override(
        tiny,
        {"train.epochs": 2, "train.batch_size": BATCH, "data.binarize": binarize,
         "train.lr_schedule": "cosine"},
    )  # fmt: skip
    grouped, per_step = fitted(run, ragged_images, 3), fitted(run, ragged_images, None)
    assert int(grouped.optimizer.iterations.numpy()) == 2 * STEPS  # no step on the padding
    for a, b in zip(grouped.get_weights(), per_step.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("binarize", ["none", "dynamic"])
def test_training_compiles_the_vae_that_params_describe(tiny: Config, binarize: str) -> None:
    config = override(tiny, {"data.binarize": binarize})
    make_deterministic(config.seed)
    compiled = compile_vae(config, steps_per_epoch=1)
    assert compiled.dynamic_binarization == (binarize == "dynamic")
    assert compiled.seed == config.seed
    make_deterministic(config.seed)
    built = build_vae(config.model, binarize == "dynamic", config.seed)
    for ours, theirs in zip(compiled.get_weights(), built.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, theirs)


def test_training_compiles_with_xla_under_op_determinism(tiny: Config) -> None:
    # compile_vae sets Keras' private `_jit_compile` (its public ways in refuse XLA once op
    # determinism is on). Keras' public `jit_compile` reads it back: if Keras renames it, the
    # assignment makes a stray attribute, the property resolves to False, and this fails.
    compiled = compile_vae(tiny, steps_per_epoch=1)
    assert compiled.jit_compile is True
    assert compiled.steps_per_execution == STEPS_PER_EXECUTION


def test_training_needs_one_full_batch_and_says_so_in_one_line(tiny: Config) -> None:
    batch = tiny.train.batch_size
    check_batch_size(tiny.train, batch)  # exactly one full batch is enough
    with pytest.raises(ConfigError, match=f"train.batch_size = {batch} is larger than the "):
        check_batch_size(tiny.train, batch - 1)


def test_same_seed_same_weights_other_seed_other_weights(tiny: Config, images: np.ndarray) -> None:
    first = fit_vae(tiny, images, images[:64], verbose=0)
    second = fit_vae(tiny, images, images[:64], verbose=0)
    reseeded = fit_vae(override(tiny, {"seed": 1}), images, images[:64], verbose=0)
    for a, b in zip(weights(first.model), weights(second.model), strict=True):
        np.testing.assert_array_equal(a, b)
    assert first.history == second.history
    assert not all(
        np.array_equal(a, b)
        for a, b in zip(weights(first.model), weights(reseeded.model), strict=True)
    )


def test_history_has_every_column_per_epoch(tiny: Config, images: np.ndarray) -> None:
    trained = fit_vae(override(tiny, {"train.epochs": 3}), images, images[:64], verbose=0)
    assert [row["epoch"] for row in trained.history] == [1, 2, 3]
    for row in trained.history:
        assert tuple(row) == HISTORY_COLUMNS == (
            "epoch", "train/loss", "train/reconstruction", "train/kl",
            "val/neg_elbo", "val/reconstruction", "val/kl", "learning_rate", "beta",
        )  # fmt: skip
        assert row["val/neg_elbo"] == pytest.approx(row["val/reconstruction"] + row["val/kl"], 1e-5)
        assert all(np.isfinite(v) for v in row.values())
    assert trained.history[-1]["val/neg_elbo"] < trained.history[0]["val/neg_elbo"]


def test_without_warmup_beta_is_one_and_the_loss_is_the_negative_elbo(
    tiny: Config, images: np.ndarray
) -> None:
    assert [EpochRecorder(0).beta(epoch) for epoch in range(3)] == [1.0, 1.0, 1.0]
    trained = fit_vae(override(tiny, {"train.epochs": 2}), images, images[:64], verbose=0)
    assert [row["beta"] for row in trained.history] == [1.0, 1.0]
    for row in trained.history:
        elbo_terms = row["train/reconstruction"] + row["train/kl"]
        assert row["train/loss"] == pytest.approx(elbo_terms, 1e-4)


def test_kl_warmup_raises_beta_linearly(tiny: Config, images: np.ndarray) -> None:
    warm = override(tiny, {"train.epochs": 4, "train.kl_warmup_epochs": 3})
    trained = fit_vae(warm, images, images[:64], verbose=0)
    assert [row["beta"] for row in trained.history] == pytest.approx([1 / 3, 2 / 3, 1, 1])
    # validation is reported at beta = 1, training at the epoch's beta
    first = trained.history[0]
    assert first["train/loss"] < first["train/reconstruction"] + first["train/kl"]


@pytest.mark.parametrize("schedule", ["cosine", "exponential"])
def test_learning_rate_schedules_decay(tiny: Config, images: np.ndarray, schedule: str) -> None:
    run = override(tiny, {"train.epochs": 3, "train.lr_schedule": schedule})
    rates = [row["learning_rate"] for row in fit_vae(run, images, images[:64], verbose=0).history]
    assert rates[0] < tiny.train.learning_rate and rates[0] > rates[1] > rates[2]
    if schedule == "exponential":
        decay = tiny.train.lr_decay_rate
        assert rates == pytest.approx([0.003 * decay, 0.003 * decay**2, 0.003 * decay**3])
    else:
        assert rates[2] == pytest.approx(0.0, abs=1e-9)


def test_constant_learning_rate_by_default(tiny: Config, images: np.ndarray) -> None:
    rates = [row["learning_rate"] for row in fit_vae(tiny, images, images[:64], verbose=0).history]
    assert rates == pytest.approx([0.003, 0.003])


def test_exponential_decay_is_one_factor_per_epoch_when_batches_do_not_divide(
    tiny: Config,
) -> None:
    """The learning-rate schedules count epochs in optimisation steps, and an epoch is as many
    steps as there are full batches: when the training images do not divide into batches, the
    exponential schedule still decays by exactly `lr_decay_rate` per epoch (params.yaml)."""
    run = override(
        tiny,
        {"train.batch_size": 32, "train.lr_schedule": "exponential", "train.lr_decay_rate": 0.5},
    )
    images = (np.random.default_rng(0).random((80, 28, 28)) < 0.2).astype(np.float32)
    trained = fit_vae(run, images, images[:32], verbose=0)  # 80 images: 2 full batches of 32
    rates = [row["learning_rate"] for row in trained.history]
    assert rates == pytest.approx([0.003 * 0.5, 0.003 * 0.25], rel=1e-6)


def test_early_stopping_restores_the_best_epoch(tiny: Config) -> None:
    # Learning blank images makes the model worse and worse on inked ones: val -ELBO rises.
    blank = np.zeros((256, 28, 28), np.float32)
    inked = np.ones((64, 28, 28), np.float32)
    patient = override(tiny, {"train.epochs": 10, "train.early_stopping_patience": 2})
    trained = fit_vae(patient, blank, inked, verbose=0)
    losses = [row["val/neg_elbo"] for row in trained.history]
    assert len(losses) < 10
    assert trained.best_epoch == 1 + int(np.argmin(losses))
    assert len(losses) == trained.best_epoch + 2  # stopped after `patience` worse epochs
    restored = trained.model.evaluate(inked, batch_size=64, verbose=0, return_dict=True)
    assert restored["loss"] == pytest.approx(min(losses), rel=0.05)
    best = trained.history[trained.best_epoch - 1]  # what the run reports: the model it keeps
    assert trained.summary == {
        "best_epoch": trained.best_epoch,
        "epochs_trained": len(losses),
        "best.val/neg_elbo": min(losses),
        "best.val/reconstruction": best["val/reconstruction"],
        "best.val/kl": best["val/kl"],
    }


def test_without_early_stopping_the_best_epoch_is_the_last_one(tiny: Config) -> None:
    """Without early stopping, training keeps the last epoch's weights, so the epoch a run
    reports as best (`best_epoch`, `best.val/neg_elbo`: the model it keeps) is the last one, even
    when an earlier epoch had a lower validation -ELBO."""
    # Learning blank images makes the model worse and worse on inked ones: val -ELBO rises.
    run = override(tiny, {"train.epochs": 3, "train.early_stopping_patience": 0})
    blank = np.zeros((128, 28, 28), np.float32)
    inked = np.ones((32, 28, 28), np.float32)
    trained = fit_vae(run, blank, inked, verbose=0)
    losses = [row["val/neg_elbo"] for row in trained.history]
    assert len(losses) == 3 and int(np.argmin(losses)) < 2  # an earlier epoch was better
    assert trained.best_epoch == 3
    summary = trained.summary
    assert (summary["best_epoch"], summary["epochs_trained"]) == (3, 3)
    assert summary["best.val/neg_elbo"] == losses[-1]


def test_training_prints_one_line_per_epoch_with_loss_and_val_loss(
    tiny: Config, capfd: pytest.CaptureFixture[str]
) -> None:
    """What the train stage prints while it trains: Keras' progress line, one per epoch, saying
    `loss` and `val_loss` (README, "Training"), not nothing and not a progress bar redrawn at
    every step."""
    run = override(tiny, {"train.epochs": 2})
    images = (np.random.default_rng(0).random((96, 28, 28)) < 0.2).astype(np.float32)
    capfd.readouterr()
    fit_vae(run, images[:80], images[80:])  # the verbosity the train stage trains with
    lines = capfd.readouterr().out.splitlines()
    assert "\r" not in "".join(lines) and "\x1b" not in "".join(lines)  # no redrawn bar
    assert len(lines) == 4, lines
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2"
    for line in lines[1::2]:
        assert EPOCH_LINE.match(line), line


@pytest.mark.parametrize("key", ["loss", "val_loss"])
def test_a_diverged_epoch_stops_training_with_one_line(tiny: Config, key: str) -> None:
    model = compile_vae(tiny, steps_per_epoch=1)
    recorder = EpochRecorder(0)
    recorder.set_model(model)
    recorder.on_epoch_end(0, {"loss": 150.0, "val_loss": 151.0})  # a finite epoch passes
    with pytest.raises(Diverged) as raised:
        recorder.on_epoch_end(1, {"loss": 150.0, "val_loss": 151.0, key: float("nan")})
    assert str(raised.value).startswith(f"training diverged in epoch 2: {EPOCH_NAMES[key]} is nan")
    assert "train.learning_rate" in str(raised.value)
