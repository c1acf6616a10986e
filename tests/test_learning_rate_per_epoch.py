"""The learning-rate schedules count epochs in optimisation steps, and an epoch is as many steps as
there are full batches: when the training images do not divide into batches, the exponential
schedule still decays by exactly `lr_decay_rate` per epoch (params.yaml)."""

from __future__ import annotations

import numpy as np
import pytest

from vae_mnist.config import Config
from vae_mnist.fitting import fit_vae

from .conftest import override


def test_exponential_decay_is_one_factor_per_epoch_when_batches_do_not_divide(
    config: Config,
) -> None:
    run = override(
        config,
        {"model.hidden_units": [16], "model.latent_dim": 2, "train.epochs": 2,
         "train.batch_size": 32, "train.learning_rate": 0.003,
         "train.lr_schedule": "exponential", "train.lr_decay_rate": 0.5},
    )  # fmt: skip
    images = (np.random.default_rng(0).random((80, 28, 28)) < 0.2).astype(np.float32)
    trained = fit_vae(run, images, images[:32], verbose=0)  # 80 images: 2 full batches an epoch
    rates = [row["learning_rate"] for row in trained.history]
    assert rates == pytest.approx([0.003 * 0.5, 0.003 * 0.25], rel=1e-6)
