"""train.distribution: mirrored replicas and multi-worker runs compute the one-device training,
each worker agrees, only the chief writes and logs, and a lost worker stops the run cleanly.

The numeric tests run tests/support/distribution_probe.py in fresh processes (tf.distribute
fixes the devices and the cluster when TensorFlow starts; tests/processes/); the stage tests run
pipeline/train.py as DVC does, on a tiny processed dataset and a real sqlite MLflow store.
"""

from __future__ import annotations

import os

import pytest

from vae_mnist.common.errors import ClusterError, ConfigError
from vae_mnist.training.cluster import (
    WORKERS_ENV,
    local_workers,
    tf_config,
    workers_wanted,
)
from vae_mnist.training.distribution import CPU_DEVICES_ENV, TF_CONFIG_ENV, Topology, start


def test_a_global_batch_that_does_not_split_over_the_replicas_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    workers = [f"127.0.0.1:{port}" for port in range(1, 5)]  # never dialled: refused first
    monkeypatch.setenv(TF_CONFIG_ENV, tf_config(workers, 0))
    with pytest.raises(ConfigError, match=r"batch_size = 130 does not split evenly over 4 "):
        start("multi_worker", 130)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("not json", "TF_CONFIG is not a cluster spec"),
        ('{"cluster": {"worker": ["a:1"]}}', "TF_CONFIG is not a cluster spec"),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1}}',
         "task worker 1 is not in its cluster"),
        ("", "train.distribution = multi_worker needs TF_CONFIG"),
    ],
)  # fmt: skip
def test_a_bad_tf_config_is_one_line(
    raw: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TF_CONFIG_ENV, raw)
    with pytest.raises(ClusterError, match=message):
        start("multi_worker", 128)


@pytest.mark.parametrize("raw", ["0", "two", "-1", "65"])
def test_bad_device_and_worker_counts_are_one_line(
    raw: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CPU_DEVICES_ENV, raw)
    with pytest.raises(ConfigError, match=CPU_DEVICES_ENV):
        start("mirrored", 128)
    monkeypatch.setenv(WORKERS_ENV, raw)
    with pytest.raises(ConfigError, match=WORKERS_ENV):
        workers_wanted()


def test_without_multi_worker_or_with_tf_config_nothing_is_started(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(TF_CONFIG_ENV, raising=False)
    with local_workers("mirrored", ["-c", "raise SystemExit(3)"]):
        assert TF_CONFIG_ENV not in os.environ
    monkeypatch.setenv(TF_CONFIG_ENV, tf_config(["127.0.0.1:1"], 0))
    with local_workers("multi_worker", ["-c", "raise SystemExit(3)"]):
        pass


def test_one_device_topology_is_keras_fit() -> None:
    topology = start("none", 128)
    assert topology == Topology("none", None, ("default",), 1, True)
    assert topology.record() == {
        "distribution.replicas": 1, "distribution.workers": 1, "distribution.devices": "default"
    }  # fmt: skip
