"""The one shrink table: how far each kind of test shrinks the real params.yaml, and the
helper that applies a shrink (or any change) as params.yaml would be validated."""

from __future__ import annotations

from typing import Any

from vae_mnist.common.config import Config, set_dotted

# The end-to-end tests: the real params.yaml on real MNIST, one epoch and a two-sample bound.
SHRUNK = {"train.epochs": 1, "evaluate.iwae_samples": 2}

# The unit tests: the real params.yaml shrunk to a network that trains on a few hundred
# synthetic images in a second or two.
# A test changes on top of it only what it is about: override(tiny, {...}).
TINY = {
    "data.val_size": 20,
    "model.mlp.hidden_units": [32, 16],
    "model.latent_dim": 3,
    "train.epochs": 2,
    "train.batch_size": 32,
    "train.learning_rate": 0.003,
    "evaluate.iwae_samples": 3,
}


def override(config: Config, changes: dict[str, Any]) -> Config:
    """A copy of `config` with dotted keys replaced, validated like params.yaml."""
    tree = config.model_dump()
    for dotted, value in changes.items():
        set_dotted(tree, dotted, value)
    return Config.model_validate(tree)
