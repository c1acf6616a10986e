"""One name per quantity, in MLflow's `split/name` form, wherever a user reads it.

The same names head the history CSV, label the per-epoch and summary metrics in MLflow and the
DVC plots, and key the test metrics (metrics.json nests them, which DVC shows as `test.neg_elbo`).
Keras names its epoch logs its own way (`loss`, `val_loss`, ...); `EPOCH_NAMES` is the one place
they are translated.
"""

from __future__ import annotations

TRAIN, VAL, TEST = "train", "val", "test"  # the splits, named once
SPLITS = (TRAIN, VAL, TEST)


def metric(split: str, quantity: str) -> str:
    """`val/neg_elbo`, `test/kl`, ...: the name of a quantity measured on a split."""
    return f"{split}/{quantity}"


# Keras' epoch logs -> the history's names. Training minimises `loss` = reconstruction + beta*KL,
# which is the negative ELBO only at beta = 1; validation always reports the negative ELBO.
EPOCH_NAMES = {
    "loss": metric(TRAIN, "loss"),
    "reconstruction": metric(TRAIN, "reconstruction"),
    "kl": metric(TRAIN, "kl"),
    "val_loss": metric(VAL, "neg_elbo"),
    "val_reconstruction": metric(VAL, "reconstruction"),
    "val_kl": metric(VAL, "kl"),
    "learning_rate": "learning_rate",
    "beta": "beta",
}
HISTORY_COLUMNS = ("epoch", *EPOCH_NAMES.values())
VAL_NEG_ELBO = metric(VAL, "neg_elbo")
TEST_NEG_ELBO = metric(TEST, "neg_elbo")  # what the champion is chosen by
# The test quantities where less is better (a bound, an error, a cost in bits); the others
# (kl, iwae_gap, active_units) describe a model rather than rank it.
LOWER_IS_BETTER = frozenset({"neg_elbo", "neg_iwae", "reconstruction", "bits_per_dim", "mse"})
BEST = "best"  # prefix of the train run's summary: the values at its best epoch


def at_best(name: str) -> str:
    """`best.val/neg_elbo`: a quantity's value at the best epoch (namespace.quantity)."""
    return f"{BEST}.{name}"
