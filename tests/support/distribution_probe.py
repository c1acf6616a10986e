"""Trains as the train stage would, in a process of its own, and saves what the distribution
tests compare: tf.distribute fixes the devices and the cluster when TensorFlow starts, so a
topology needs a fresh process (its env: VAE_MNIST_CPU_DEVICES, TF_CONFIG).

    python -m tests.support.distribution_probe OUT_DIR \
        '[{"name": ..., "mode": ..., "changes": ...}]'

Each job saves OUT_DIR/NAME.npz: the weights, the topology, and for mode `step` (one step on a
fixed global batch from the seeded initial weights) the loss, for mode `fit` (a whole fit on
fixed synthetic images) the history. `"xla": false` runs the one-device fit without XLA, whose
random kernels draw other numbers than TensorFlow's own: the strategies run without it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from tests.support.configs import override
from tests.support.paths import REPO
from vae_mnist.common.config import PARAMS_FILE, Config, load_config

TINY = {
    "model.mlp.hidden_units": [32, 16],
    "model.latent_dim": 3,
    "train.epochs": 3,
    "train.batch_size": 32,
    "train.learning_rate": 0.003,
}


def images(n: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.random((n, 28, 28)).astype(np.float32) * (rng.random((n, 28, 28)) < 0.3)


def run(job: dict[str, Any], topologies: dict[str, Any]) -> dict[str, np.ndarray]:
    import tensorflow as tf

    from vae_mnist.training import fit as training

    config = configured(job)
    topology = topologies[config.train.distribution]
    training.JIT_COMPILE = job.get("xla", True)
    saved: dict[str, np.ndarray] = {}
    if job["mode"] == "step":
        strategy = topology.strategy or tf.distribute.get_strategy()
        training.make_deterministic(config.seed)
        with strategy.scope():
            model = training.compile_vae(config, steps_per_epoch=1)
            model.optimizer.build(model.trainable_variables)
        batch = tf.constant(images(config.train.batch_size))
        strategy.run(tf.function(training.replica_step), args=(model, batch))
        saved["loss"] = np.asarray(float(model.loss_tracker.result()))  # over all replicas
        shares = strategy.run(lambda: tf.stack(training.replica_rows(tf.constant(7)) or (0, 7)))
        saved["rows"] = np.stack(strategy.experimental_local_results(shares))
    else:
        trained = training.fit_vae(
            config, images(256), images(300)[256:], verbose=0, strategy=topology.strategy
        )
        model = trained.model
        saved["history"] = np.asarray(json.dumps(trained.history))
    for index, weight in enumerate(model.get_weights()):
        saved[f"w{index}"] = np.asarray(weight)
    saved["topology"] = np.asarray(json.dumps(topology.record() | {"chief": topology.chief}))
    return saved


def configured(job: dict[str, Any]) -> Config:
    return override(load_config(REPO / PARAMS_FILE), {**TINY, **job["changes"]})


def main() -> None:
    out, jobs = Path(sys.argv[1]), json.loads(sys.argv[2])
    from vae_mnist.training import distribution

    # Each strategy once (a process holds one multi-worker strategy at most), and before any
    # other TensorFlow work, as the train stage does.
    kinds = {configured(job).train.distribution for job in jobs}
    batch = TINY["train.batch_size"]
    topologies = {
        kind: distribution.start(kind, batch) for kind in sorted(kinds, key="none".__eq__)
    }
    for job in jobs:
        np.savez(out / f"{job['name']}.npz", **run(job, topologies))


if __name__ == "__main__":
    main()
