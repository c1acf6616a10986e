"""Without early stopping, training keeps the last epoch's weights, so the epoch a run reports
as best (`best_epoch`, `best.val/neg_elbo`: the model it keeps) is the last one, even when an
earlier epoch had a lower validation -ELBO."""

from __future__ import annotations

import numpy as np

from vae_mnist.config import Config
from vae_mnist.fitting import fit_vae

from .conftest import override


def test_without_early_stopping_the_best_epoch_is_the_last_one(config: Config) -> None:
    # Learning blank images makes the model worse and worse on inked ones: val -ELBO rises.
    tiny = override(
        config,
        {"model.hidden_units": [16], "model.latent_dim": 2, "train.epochs": 3,
         "train.batch_size": 32, "train.learning_rate": 0.003,
         "train.early_stopping_patience": 0},
    )  # fmt: skip
    blank = np.zeros((128, 28, 28), np.float32)
    inked = np.ones((32, 28, 28), np.float32)
    trained = fit_vae(tiny, blank, inked, verbose=0)
    losses = [row["val/neg_elbo"] for row in trained.history]
    assert len(losses) == 3 and int(np.argmin(losses)) < 2  # an earlier epoch was better
    assert trained.best_epoch == 3
    summary = trained.summary()
    assert (summary["best_epoch"], summary["epochs_trained"]) == (3, 3)
    assert summary["best.val/neg_elbo"] == losses[-1]
