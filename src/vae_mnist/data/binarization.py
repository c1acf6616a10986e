"""One Bernoulli draw per pixel, with the pixel's intensity as its probability.

The same draw binarizes the splits once in preprocess (`data.binarize: static`) and the test
images in evaluate (`dynamic`, which training draws afresh per batch inside the model).
"""

from __future__ import annotations

import numpy as np


def binarize(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """float32 0/1 images: a pixel is on when its uniform float32 draw is below its intensity,
    so that P(on) is the intensity exactly (a draw equal to it is off)."""
    return (rng.random(images.shape, dtype=np.float32) < images).astype(np.float32)
