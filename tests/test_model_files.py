"""Writing and reading .keras files: save_vae makes the folders it needs and, when Keras fails,
reports Keras' own error and leaves nothing behind; load_vae runs no code from the file (it
refuses one in one line)."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from vae_mnist.config import Config
from vae_mnist.errors import DataError
from vae_mnist.model import VAE, build_vae, load_vae, save_vae

from .conftest import override


@pytest.fixture
def vae(config: Config) -> VAE:
    small = override(config, {"model.hidden_units": [8], "model.latent_dim": 2})
    return build_vae(small.model, False, seed=0)


def test_save_vae_makes_every_missing_folder_of_its_path(vae: VAE, tmp_path: Path) -> None:
    path = tmp_path / "models" / "latest" / "vae.keras"
    save_vae(vae, path)
    assert [p.name for p in path.parent.iterdir()] == ["vae.keras"]
    x = np.full((2, 28, 28), 0.5, np.float32)
    np.testing.assert_array_equal(np.asarray(load_vae(path)(x)), np.asarray(vae(x)))


def test_a_failed_keras_save_raises_its_own_error_and_leaves_nothing(
    vae: VAE, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_space(self: keras.Model, filepath: Path, *args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(VAE, "save", no_space)
    with pytest.raises(OSError, match="No space left on device"):
        save_vae(vae, tmp_path / "vae.keras")
    assert list(tmp_path.iterdir()) == []


def test_load_vae_refuses_a_file_holding_python_code(tmp_path: Path) -> None:
    x = keras.Input((3,), name="x")
    keras.Model(x, keras.layers.Lambda(lambda t: t * 2.0)(x)).save(tmp_path / "lambda.keras")
    with pytest.raises(DataError, match="`Lambda` layer whose `function` is a Python lambda"):
        load_vae(tmp_path / "lambda.keras")
