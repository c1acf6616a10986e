"""Seconds per epoch of the train stage's trainer under each `train.distribution`, in one run.

On one machine the replicas share its cores, so no mode beats `none` here: what the figures show
is what each strategy costs on top of the same arithmetic, measured side by side (machines here
differ in CPU, so compare the ratios, not the seconds). The modes, each in a fresh process
(tf.distribute fixes the devices and the cluster when TensorFlow starts):

- none: Keras' fit as the stage runs it (XLA, STEPS_PER_CALL steps per compiled call);
- mirrored over one device: the strategies' training loop alone (training.fit_replicated, no XLA);
- mirrored over the CPU split in two logical devices (VAE_MNIST_CPU_DEVICES=2);
- multi_worker with two local worker processes on 127.0.0.1 (cluster.local_workers).

The images are random, of MNIST's shape and count: the work per epoch is the same as on MNIST.

    python benchmarks/distributed_training.py [--epochs 4] [--images 60000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

MODES = {  # name: (train.distribution, extra environment)
    "none": ("none", {}),
    "mirrored, 1 device": ("mirrored", {"VAE_MNIST_CPU_DEVICES": "1"}),
    "mirrored, 2 CPU devices": ("mirrored", {"VAE_MNIST_CPU_DEVICES": "2"}),
    "multi_worker, 2 local workers": ("multi_worker", {"VAE_MNIST_WORKERS": "2"}),
}
RESULT = "RESULT "
VAL_IMAGES = 5000


def child(distribution: str, epochs: int, images: int) -> None:
    """Train as the stage does under `distribution` and print the epoch times (the chief)."""
    from vae_mnist.common.config import load_config
    from vae_mnist.common.tensorflow_env import quiet_tensorflow
    from vae_mnist.training.cluster import local_workers

    quiet_tensorflow()  # the stage's TensorFlow settings (oneDNN off), before TensorFlow loads
    config = load_config()
    config = config.model_copy(
        update={"train": config.train.model_copy(update={"epochs": epochs,
                                                          "distribution": distribution})}
    )  # fmt: skip
    with local_workers(distribution, sys.argv):
        import keras
        import numpy as np

        from vae_mnist.training import distribution as strategies
        from vae_mnist.training.fit import fit_vae

        topology = strategies.start(distribution, config.train.batch_size)
        rng = np.random.default_rng(0)
        data = (rng.random((images + VAL_IMAGES, 28, 28)) < 0.13).astype(np.float32)

        class EpochClock(keras.callbacks.Callback):
            def __init__(self) -> None:
                super().__init__()
                self.seconds: list[float] = []

            def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
                self.started = time.perf_counter()

            def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
                self.seconds.append(time.perf_counter() - self.started)

        clock = EpochClock()
        fit_vae(config, data[:images], data[images:], [clock], verbose=0,
                strategy=topology.strategy)  # fmt: skip
        if topology.chief:
            print(RESULT + json.dumps({"seconds": clock.seconds, **topology.record()}), flush=True)


def run(mode: str, epochs: int, images: int) -> dict[str, Any]:
    distribution, env = MODES[mode]
    command = [sys.executable, __file__, "--child", distribution, "--epochs", str(epochs),
               "--images", str(images)]  # fmt: skip
    result = subprocess.run(
        command, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **env},
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    lines = [line for line in result.stdout.splitlines() if line.startswith(RESULT)]
    if result.returncode != 0 or not lines:
        raise SystemExit(f"{mode} failed:\n{result.stderr[-3000:]}")
    return json.loads(lines[-1].removeprefix(RESULT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--images", type=int, default=60_000)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.epochs, args.images)
        return
    print(f"{args.images} images an epoch, batch from params.yaml, {args.epochs} epochs per mode")
    baseline = None
    for mode in MODES:
        measured = run(mode, args.epochs, args.images)
        seconds = measured["seconds"]
        steady = statistics.median(seconds[1:]) if len(seconds) > 1 else seconds[0]
        baseline = baseline or steady
        print(
            f"{mode:31s} replicas {measured['distribution.replicas']}  first epoch "
            f"{seconds[0]:6.2f} s  then (median) {steady:6.2f} s/epoch  "
            f"{steady / baseline:5.2f}x none"
        )


if __name__ == "__main__":
    main()
