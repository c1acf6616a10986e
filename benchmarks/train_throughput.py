"""Training speed against this machine's limit and against a plain `model.fit`, in one run.

The limit is the fp32 GEMM rate at the network's own layer shapes, measured with numpy: every
Dense layer costs one forward GEMM and two backward GEMMs (input and weight gradients) per batch,
so an epoch can be no faster than the sum of those GEMM times over its batches. Machines here
differ in CPU, so the figures that count are the ratios printed at the end, all measured now.

    python benchmarks/train_throughput.py [--epochs 3] [--images 60000]
"""

from __future__ import annotations

import argparse
import itertools
import resource
import statistics
import time
from pathlib import Path

import numpy as np

from vae_mnist.config import Config, load_config
from vae_mnist.data.mnist import IMAGE_SHAPE

PIXELS = IMAGE_SHAPE[0] * IMAGE_SHAPE[1]


def layer_shapes(config: Config) -> list[tuple[int, int]]:
    """(fan_in, fan_out) of every Dense layer, encoder then decoder."""
    hidden = list(config.model.hidden_units)
    latent = config.model.latent_dim
    encoder = list(zip([PIXELS, *hidden[:-1]], hidden, strict=True))
    encoder += [(hidden[-1], latent)] * 2  # z_mean, z_log_var
    widths = [latent, *reversed(hidden), PIXELS]
    return encoder + list(itertools.pairwise(widths))


def gemm_limit(config: Config, images: int, repeats: int = 200) -> tuple[float, float]:
    """(seconds per epoch at the measured GEMM rate, FLOP per image).

    Times the whole sequence of a training step's GEMMs, as a step runs them (cache effects
    included), and takes the median over `repeats` sequences.
    """
    batch = config.train.batch_size
    rng = np.random.default_rng(0)
    operands = []
    for fan_in, fan_out in layer_shapes(config):
        x = rng.standard_normal((batch, fan_in), dtype=np.float32)
        w = rng.standard_normal((fan_in, fan_out), dtype=np.float32)
        dy = rng.standard_normal((batch, fan_out), dtype=np.float32)
        for a, b in ((x, w), (dy, w.T), (x.T, dy)):  # forward, input grad, weight grad
            operands.append((np.ascontiguousarray(a), np.ascontiguousarray(b)))
    flops = sum(2 * a.shape[0] * a.shape[1] * b.shape[1] for a, b in operands)
    times = []
    for _ in range(repeats + 10):
        start = time.perf_counter()
        for a, b in operands:
            a @ b
        times.append(time.perf_counter() - start)
    step = statistics.median(times[10:])
    return step * images / batch, flops / batch


def epoch_times(fit) -> list[float]:
    import keras

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.start)

    times: list[float] = []
    fit(Timer())
    return times


def plain_fit(config: Config, images: np.ndarray, epochs: int):
    """The idiomatic baseline: the same VAE and train_step, compiled without XLA, fed numpy."""
    import keras

    from vae_mnist.model import build_vae
    from vae_mnist.training import make_deterministic

    def fit(timer):
        make_deterministic(config.seed)
        model = build_vae(config.model, False, config.seed)
        model.compile(optimizer=keras.optimizers.Adam(config.train.learning_rate))
        model.fit(images, batch_size=config.train.batch_size, epochs=epochs, shuffle=True,
                  callbacks=[timer], verbose=0)  # fmt: skip

    return fit


def project_fit(config: Config, images: np.ndarray, epochs: int):
    from vae_mnist.training import fit_vae

    shrunk = Config.model_validate(
        {**config.model_dump(), "train": {**config.train.model_dump(), "epochs": epochs}}
    )

    def fit(timer):
        fit_vae(shrunk, images, images[:1000], callbacks=[timer], verbose=0, validate=False)

    return fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--epochs", type=int, default=3, help="epochs per trainer (first is warm-up)"
    )
    parser.add_argument("--images", type=int, default=60_000, help="images per epoch")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args()
    config = load_config(args.params)
    images = np.random.default_rng(0).random((args.images, *IMAGE_SHAPE), dtype=np.float32)

    limit, flop_per_image = gemm_limit(config, args.images)
    print(f"network {config.model.hidden_units} latent {config.model.latent_dim}, "
          f"batch {config.train.batch_size}, {args.images} images/epoch")  # fmt: skip
    print(f"GEMM limit      {limit:7.2f} s/epoch  ({flop_per_image / 1e6:.2f} MFLOP/image, "
          f"{flop_per_image * args.images / limit / 1e9:.1f} GFLOP/s)")  # fmt: skip

    results = {}
    for name, make in (("project trainer", project_fit), ("plain model.fit", plain_fit)):
        times = epoch_times(make(config, images, args.epochs))
        steady = statistics.median(times[1:]) if len(times) > 1 else times[0]
        results[name] = steady
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{name:15} {steady:7.2f} s/epoch  ({args.images / steady:8.0f} images/s; "
              f"first epoch {times[0]:.2f} s; peak RSS so far {rss:.0f} MiB)")  # fmt: skip

    trainer, baseline = results["project trainer"], results["plain model.fit"]
    print(f"trainer / limit     {trainer / limit:5.2f}x  (target <= 1.3)")
    print(f"baseline / trainer  {baseline / trainer:5.2f}x  (target >= 2)")


if __name__ == "__main__":
    main()
