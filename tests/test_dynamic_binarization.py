"""Dynamic binarization inks a pixel with probability exactly its intensity: a blank pixel is
never inked, a fully inked one always is, even where the uniform draw is exactly 0."""

from __future__ import annotations

import numpy as np

from vae_mnist.config import Config
from vae_mnist.model import build_vae

from .conftest import override


def test_a_blank_pixel_is_never_inked_and_a_full_one_always_is(config: Config) -> None:
    small = override(config, {"model.hidden_units": [8], "model.latent_dim": 2})
    vae = build_vae(small.model, True, seed=5)  # its first draw of this shape holds an exact 0.0
    images = np.zeros((1024, 28, 28), np.float32)
    images[:512] = 1.0  # the exact 0.0 falls on a blank image (number 566)
    drawn = np.asarray(vae._binarize(images))
    assert drawn.dtype == np.float32
    assert drawn[:512].all()
    assert not drawn[512:].any()
