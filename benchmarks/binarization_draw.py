"""Dynamic binarization's draw, and what it adds to an epoch, in one run.

Part 1: one batch's uniform draw (batch x 784 floats) inside an XLA-compiled loop, as training
runs it, with each of TensorFlow's stateless algorithms. The default ("auto_select") is what
`keras.random.uniform` uses; the model draws with Philox, named. Part 2: epochs of the project's
trainer on random images, with `data.binarize` none and dynamic, at the latent size of the
`dynamic-latent50` recipe; the ratio dynamic / none is the figure that counts.

    python benchmarks/binarization_draw.py [--images 20000] [--epochs 3] [--latent 50]
"""

from __future__ import annotations

import argparse
import statistics
import time

from vae_mnist.common.tensorflow_env import quiet_tensorflow

quiet_tensorflow()  # the stages' TensorFlow settings (oneDNN off), before TensorFlow loads

import keras
import numpy as np
import tensorflow as tf

from vae_mnist.common.config import with_overrides
from vae_mnist.common.mnist import IMAGE_SHAPE, PIXELS
from vae_mnist.training.fit import fit_vae, make_deterministic

DRAWS = 100  # per compiled call


def draw_ms(alg: str, batch: int) -> float:
    """Milliseconds for one batch's draw, inside one compiled call of DRAWS draws."""

    @tf.function(jit_compile=True)
    def draws(seed: tf.Tensor) -> tf.Tensor:
        inked = tf.zeros((batch, PIXELS))
        for i in tf.range(DRAWS):
            uniform = tf.random.stateless_uniform((batch, PIXELS), seed + tf.stack([i, 0]), alg=alg)
            inked += tf.cast(uniform < 0.5, tf.float32)
        return inked

    seed = tf.constant([1, 2])
    draws(seed)  # traced and compiled
    began = time.perf_counter()
    draws(seed).numpy()
    return (time.perf_counter() - began) / DRAWS * 1e3


class EpochTimes(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.began = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.seconds.append(time.perf_counter() - self.began)


def epoch_seconds(binarize: str, images: np.ndarray, args: argparse.Namespace) -> float:
    """Median epoch after the first (which compiles) of the train stage's trainer."""
    overrides = {
        "data.binarize": binarize,
        "model.latent_dim": args.latent,
        "train.epochs": args.epochs,
        "train.batch_size": args.batch,
    }
    config = with_overrides(overrides, "benchmark")
    times = EpochTimes()
    fit_vae(config, images, images[:2000], callbacks=[times], verbose=0)
    return statistics.median(times.seconds[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20_000, help="images per epoch")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--latent", type=int, default=50)
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()
    make_deterministic(0)  # as training runs

    print(f"one draw of {args.batch} x {PIXELS} uniforms in XLA (ms):")
    for alg in ("auto_select", "philox", "threefry"):
        print(f"  {alg:12s} {draw_ms(alg, args.batch):8.2f}")

    images = np.random.default_rng(0).random((args.images, *IMAGE_SHAPE), dtype=np.float32)
    none = epoch_seconds("none", images, args)
    dynamic = epoch_seconds("dynamic", images, args)
    print(f"epoch of {args.images} images, latent {args.latent}, median after the first:")
    print(f"  data.binarize none     {none:6.2f} s")
    print(f"  data.binarize dynamic  {dynamic:6.2f} s   (dynamic / none = {dynamic / none:.2f})")


if __name__ == "__main__":
    main()
