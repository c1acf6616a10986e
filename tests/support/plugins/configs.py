"""Fixtures: the real default config, shrunk, and one trained VAE per session."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support.configs import TINY, override
from tests.support.data import (
    blurry_digits,
)
from tests.support.paths import REPO
from vae_mnist.common.config import PARAMS_FILE, Config, load_config


@pytest.fixture
def config() -> Config:
    """The repository's own params.yaml, as every stage reads it."""
    return load_config(REPO / PARAMS_FILE)


@pytest.fixture
def tiny(config: Config) -> Config:
    """The repository's params.yaml, shrunk (TINY)."""
    return override(config, TINY)


@dataclass(frozen=True)
class Trained:
    config: Config
    images: np.ndarray  # what it trained on (blurry_digits), labels beside them
    labels: np.ndarray
    model: Any  # the trained vae_mnist.model.vae.VAE
    path: Path  # the same model, saved as the train stage saves it


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """Some trained VAE, once per session, for the tests that only need one: TINY trained three
    epochs on blurry_digits. Read it; a test that changes a model trains its own."""
    from vae_mnist.model.files import save_vae
    from vae_mnist.training.fit import fit_vae

    config = override(load_config(REPO / PARAMS_FILE), {**TINY, "train.epochs": 3})
    images, labels = blurry_digits()
    model = fit_vae(config, images, images[:60], verbose=0).model
    path = tmp_path_factory.mktemp("trained") / "vae.keras"
    save_vae(model, path)
    return Trained(config, images, labels, model, path)
