"""The memory evaluation takes, from the model's own layers, and the limit it is held to.

`metrics.per_image_terms` decodes k samples of every test image in chunks of about EVAL_ROWS
decoder rows (images x samples): one image per chunk once k is larger. Its working memory is that
many rows times the widest pair of adjacent float32 activations a row passes through in the
decoder (then its logits beside the images tiled to match), whatever the model kind. It is refused
above EVAL_MEMORY_LIMIT whatever the machine, so that a configuration evaluates on every machine
or on none. Measured on the CPU: 6.3 kB a row for the default MLP (logits and the tiled images,
2 x 784 floats), 16.4 kB for hidden_units [2048, 2048].
"""

from __future__ import annotations

import itertools
import math

import keras

from vae_mnist.common.errors import ConfigError
from vae_mnist.common.mnist import PIXELS

EVAL_ROWS = 16_384
EVAL_MEMORY_LIMIT = 4 * 2**30  # on top of TensorFlow's own ~0.75 GiB: a laptop or CI runner
FLOAT_BYTES = 4


def eval_rows(k: int) -> int:
    """Decoder rows (images x samples) per chunk at k samples an image: as many whole images as
    fit in EVAL_ROWS, at least one."""
    return k * max(1, EVAL_ROWS // k)


def activation_widths(decoder: keras.Model) -> list[int]:
    """The floats a row holds after each of the decoder's layers, its input first."""
    return [math.prod(layer.output.shape[1:]) for layer in decoder.layers]


def row_bytes(decoder: keras.Model) -> int:
    """Peak bytes per decoder row: the widest pair of adjacent activations, the latent code to the
    logits and the logits beside the images tiled to match, plus the latent sample and noise."""
    widths = [*activation_widths(decoder), PIXELS]
    widest = max(a + b for a, b in itertools.pairwise(widths))
    return FLOAT_BYTES * (widest + 2 * widths[0])


def peak_bytes(k: int, decoder: keras.Model) -> int:
    """Estimated peak working memory of evaluating with k importance samples an image."""
    return eval_rows(k) * row_bytes(decoder)


def check_fits(k: int, decoder: keras.Model) -> None:
    """One line naming evaluate.iwae_samples, and the largest that fits, when k does not."""
    need = peak_bytes(k, decoder)
    if need > EVAL_MEMORY_LIMIT:
        fit = EVAL_MEMORY_LIMIT // row_bytes(decoder)
        raise ConfigError(
            f"params.yaml: evaluate.iwae_samples = {k} is not allowed: evaluation would hold "
            f"about {need} bytes ({need / 2**30:.1f} GiB) at once with this model (a decoder "
            f"row holds {row_bytes(decoder) // FLOAT_BYTES} floats at its widest), "
            f"over the limit of {EVAL_MEMORY_LIMIT} bytes ({EVAL_MEMORY_LIMIT / 2**30:.0f} GiB); "
            f"must be at most {fit} for this model"
        )
