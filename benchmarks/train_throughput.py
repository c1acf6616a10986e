"""Training speed against this machine's limit and against a plain `model.fit`, in one run.

The limit is the fp32 GEMM rate at the network's own layer shapes, measured with numpy: every
Dense layer costs one forward GEMM and two backward GEMMs (input and weight gradients) per batch,
so an epoch can be no faster than the sum of those GEMM times over its batches. Machines here
differ in CPU, so the figures that count are the ratios printed at the end, all measured now, in
rounds that take the limit and an epoch of each trainer in turn (medians over rounds):

- the project's trainer, as the train stage runs it: groups of STEPS_PER_CALL steps inside one
  compiled call (training.step_groups);
- the trainer before it, kept here for comparison: one compiled call per step, several calls per
  execution (`steps_per_execution`), one batch at a time from tf.data;
- plain `model.fit` on numpy arrays, without XLA.

The headline ratio divides the median epoch (after the first) of one `fit` as the stage runs it
by the *fastest* limit of the run: noise only ever adds time, so the fastest limit is the truest.

    python benchmarks/train_throughput.py [--epochs 5] [--images 60000]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from pathlib import Path

from vae_mnist.common.tensorflow_env import quiet_tensorflow

quiet_tensorflow()  # the stages' TensorFlow settings (oneDNN off), before TensorFlow loads

import keras
import numpy as np

from vae_mnist.common.config import Config, load_config
from vae_mnist.common.mnist import IMAGE_SHAPE
from vae_mnist.model.vae import build_vae
from vae_mnist.training.fit import (
    STEPS_PER_CALL,
    batches,
    compile_vae,
    make_deterministic,
    run_groups,
    step_groups,
)

# A pause before each timed item: numpy's BLAS threads spin on after a GEMM, and a trainer timed
# right after the limit ran ~15% slower here (6.1 s against 5.2 s an epoch) for that alone.
SETTLE_S = 1.0


def layer_shapes(config: Config) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(fan_in, fan_out) of every Dense layer of the built encoder, then of the decoder: read off
    the network the trainer trains, whatever the kind's params say. A layer with weights that is
    not Dense has no GEMM this limit could time: said in one line."""
    vae = build_vae(config.model, False, config.seed)

    def shapes(network: keras.Model) -> list[tuple[int, int]]:
        found = []
        for layer in network.layers:
            if isinstance(layer, keras.layers.Dense):
                found.append(tuple(int(n) for n in layer.kernel.shape))
            elif layer.weights:
                raise SystemExit(
                    f"{network.name}/{layer.name} is a {type(layer).__name__}: this limit times "
                    "the GEMMs of Dense layers only"
                )
        return found

    return shapes(vae.encoder), shapes(vae.decoder)


def gemm_limit(config: Config, images: int, repeats: int = 200) -> tuple[float, float]:
    """(seconds per epoch at the measured GEMM rate, FLOP per image).

    Times the whole sequence of a training step's GEMMs, as a step runs them (cache effects
    included), and takes the median over `repeats` sequences.
    """
    batch = config.train.batch_size
    rng = np.random.default_rng(0)
    operands = []
    encoder, decoder = layer_shapes(config)
    for fan_in, fan_out in encoder + decoder:
        x = rng.standard_normal((batch, fan_in), dtype=np.float32)
        w = rng.standard_normal((fan_in, fan_out), dtype=np.float32)
        dy = rng.standard_normal((batch, fan_out), dtype=np.float32)
        for a, b in ((x, w), (dy, w.T), (x.T, dy)):  # forward, input grad, weight grad
            operands.append((np.ascontiguousarray(a), np.ascontiguousarray(b)))
    flops = sum(2 * a.shape[0] * a.shape[1] * b.shape[1] for a, b in operands)
    return gemm_seconds(operands, repeats) * images / batch, flops / batch


def gemm_seconds(operands: list[tuple[np.ndarray, np.ndarray]], repeats: int) -> float:
    """Median seconds for the whole sequence of products, after a few warm-up sequences."""
    warmup = 5
    times = []
    for _ in range(warmup + repeats):
        start = time.perf_counter()
        for a, b in operands:
            a @ b
        times.append(time.perf_counter() - start)
    return statistics.median(times[warmup:])


class EpochTimer(keras.callbacks.Callback):
    """The seconds of each epoch, leaving out fit()'s own set-up."""

    def __init__(self) -> None:
        super().__init__()
        self.all: list[float] = []

    @property
    def seconds(self) -> float:
        return self.all[-1]

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.all.append(time.perf_counter() - self.start)


def trainer(config: Config, images: np.ndarray, grouped: bool = True):
    """More epochs of fit_vae's model per call (one by default): with `grouped`, on the stage's
    own input (groups of steps per call), else on one batch per step (the trainer before)."""
    batch = config.train.batch_size
    make_deterministic(config.seed)  # as fit_vae does first
    model = compile_vae(config, len(images) // batch)
    if grouped:
        data = step_groups(images, batch, config.seed, STEPS_PER_CALL)
        run_groups(model)
    else:
        data = batches(images, batch, seed=config.seed)

    def epoch(index: int, timer: EpochTimer, epochs: int = 1) -> None:
        model.fit(data, initial_epoch=index, epochs=index + epochs, callbacks=[timer],
                  shuffle=False, verbose=0)  # fmt: skip

    return epoch


def consecutive_epochs(config: Config, images: np.ndarray, epochs: int) -> list[float]:
    """Seconds of each epoch of one fit() call of a fresh trainer, as the train stage runs them
    (the first includes compiling).

    The rounds start a fit() per epoch after a pause, which hid a stall at the start of each
    epoch of a long fit (tf.data's autotuner, now off); this keeps such a stall in view.
    """
    timer = EpochTimer()
    trainer(config, images)(0, timer, epochs)
    return timer.all


def plain_fit(config: Config, images: np.ndarray):
    """The idiomatic baseline: the same VAE and train_step, compiled without XLA, fed numpy."""
    make_deterministic(config.seed)
    model = build_vae(config.model, False, config.seed)
    model.compile(optimizer=keras.optimizers.Adam(config.train.learning_rate), jit_compile=False)

    def epoch(index: int, timer: EpochTimer) -> None:
        model.fit(images, batch_size=config.train.batch_size, initial_epoch=index,
                  epochs=index + 1, shuffle=True, callbacks=[timer], verbose=0)  # fmt: skip

    return epoch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--epochs", type=int, default=5, help="epochs per trainer (the first is warm-up)"
    )
    parser.add_argument("--images", type=int, default=60_000, help="images per epoch")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args()
    config = load_config(args.params)
    images = np.random.default_rng(0).random((args.images, *IMAGE_SHAPE), dtype=np.float32)
    print(f"network {config.model.kind} {config.model.own.model_dump()} latent "
          f"{config.model.latent_dim}, "
          f"batch {config.train.batch_size}, {args.images} images/epoch; one round = the limit, "
          f"an epoch of the trainer, an epoch of plain fit, so that a slow spell of a shared "
          f"machine weighs on all three")  # fmt: skip

    # Interleaved rounds: each ratio compares figures taken seconds apart, not minutes apart.
    trainers = {"project trainer": trainer(config, images),
                "step per call": trainer(config, images, grouped=False),
                "plain model.fit": plain_fit(config, images)}  # fmt: skip
    times: dict[str, list[float]] = {"GEMM limit": [], **{name: [] for name in trainers}}
    for index in range(args.epochs):
        time.sleep(SETTLE_S)
        limit, flop_per_image = gemm_limit(config, args.images, repeats=60)
        times["GEMM limit"].append(limit)
        for name, epoch in trainers.items():
            time.sleep(SETTLE_S)
            timer = EpochTimer()
            epoch(index, timer)
            times[name].append(timer.seconds)
        row = "  ".join(f"{name} {values[-1]:5.2f} s" for name, values in times.items())
        print(f"round {index + 1}: {row}{'  (warm-up: compiles)' if index == 0 else ''}",
              flush=True)  # fmt: skip

    time.sleep(SETTLE_S)
    run = consecutive_epochs(config, images, args.epochs)
    print(f"project trainer, {args.epochs} epochs in one fit (as the train stage runs them): "
          f"{' '.join(f'{t:.2f}' for t in run)} s", flush=True)  # fmt: skip

    steady = {name: statistics.median(values[1:] or values) for name, values in times.items()}
    fastest = min(times["GEMM limit"])
    print(f"GEMM limit      {fastest:7.2f} s/epoch fastest, {steady['GEMM limit']:.2f} median "
          f"({flop_per_image / 1e6:.2f} MFLOP/image, "
          f"{flop_per_image * args.images / fastest / 1e9:.1f} GFLOP/s)")  # fmt: skip
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for name in trainers:
        print(f"{name:15} {steady[name]:7.2f} s/epoch median of the rounds  "
              f"({args.images / steady[name]:6.0f} images/s; first epoch {times[name][0]:.2f} s, "
              f"{steady[name] / fastest:.2f}x the limit)")  # fmt: skip
    stage = statistics.median(run[1:] or run)
    print(f"peak RSS        {rss:7.0f} MiB (the models and the data, one process)")
    print(f"trainer / limit     {stage / fastest:5.2f}x  (target <= 1.3: the median epoch after "
          f"the first of one fit, {stage:.2f} s, over the fastest limit)")  # fmt: skip
    print(f"first epoch         {run[0]:5.2f} s  (compiling included; target < 15 s)")
    baseline = steady["plain model.fit"]
    print(f"plain fit / trainer {baseline / steady['project trainer']:5.2f}x  (target >= 2)")


if __name__ == "__main__":
    main()
