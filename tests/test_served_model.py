"""The model MLflow registers and serves: its name, its layers and its output's name are part of
what a user of the registry sees (and of the saved model's config)."""

from __future__ import annotations

import numpy as np
import pytest

from vae_mnist.config import Config
from vae_mnist.model import build_vae, inference_model

from .conftest import override


@pytest.fixture
def small(config: Config) -> Config:
    return override(config, {"model.hidden_units": [16], "model.latent_dim": 2})


def test_the_served_model_is_named_and_holds_encoder_decoder_and_reconstruction(
    small: Config,
) -> None:
    served = inference_model(build_vae(small.model, False, seed=0))
    assert served.name == "vae_reconstruction"
    assert [layer.name for layer in served.layers] == [
        "images",
        "encoder",
        "decoder",
        "reconstruction",
    ]
    assert served.output_names == ["reconstruction"]
    assert served.get_config()["output_layers"] == ["reconstruction", 0, 0]  # what is saved
    assert served(np.zeros((2, 28, 28), np.float32)).shape == (2, 28, 28, 1)
