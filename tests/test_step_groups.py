"""Groups of steps per compiled call train exactly as one step per call: the same batches in the
same order, the padded tail of an epoch never trained on, bit for bit the same weights."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from vae_mnist.config import Config
from vae_mnist.fitting import batches, compile_vae, step_groups

from .conftest import override

BATCH = 16
STEPS = 7  # per epoch (120 images): groups of 3 make 3 + 3 + 1, the last padded with two


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.random((STEPS * BATCH + 8, 28, 28), dtype=np.float32)  # 8 left out: ragged


def fitted(config: Config, images: np.ndarray, steps_per_call: int | None) -> keras.Model:
    model = compile_vae(config, STEPS)
    if steps_per_call is None:
        data = batches(images, BATCH, seed=config.seed)
    else:
        data = step_groups(images, BATCH, config.seed, steps_per_call)
    model.fit(data, epochs=config.train.epochs, shuffle=False, verbose=0)
    return model


def test_an_epochs_groups_hold_every_full_batch_once_then_padding(images: np.ndarray) -> None:
    groups = list(step_groups(images, BATCH, seed=0, steps_per_call=3).as_numpy_iterator())
    assert [int(count) for _, count in groups] == [3, 3, 1]
    assert all(group.shape == (3, BATCH, 28, 28) for group, _ in groups)
    trained = np.concatenate([group[:count] for group, count in groups])
    per_step = np.stack(list(batches(images, BATCH, seed=0).as_numpy_iterator()))
    np.testing.assert_array_equal(trained, per_step)  # the same batches, in the same order


@pytest.mark.parametrize("binarize", ["none", "dynamic"])
def test_groups_of_steps_give_the_weights_of_one_step_per_call(
    config: Config, images: np.ndarray, binarize: str
) -> None:
    tiny = override(
        config,
        {"model.hidden_units": [16], "train.epochs": 2, "train.batch_size": BATCH,
         "data.binarize": binarize, "train.lr_schedule": "cosine"},
    )  # fmt: skip
    grouped, per_step = fitted(tiny, images, 3), fitted(tiny, images, None)
    assert int(grouped.optimizer.iterations.numpy()) == 2 * STEPS  # no step on the padding
    for a, b in zip(grouped.get_weights(), per_step.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
