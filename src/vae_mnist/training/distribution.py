"""tf.distribute strategies for `train.distribution`, and the topology a train run records.

`mirrored` replicates the model over the devices of one machine (its GPUs; on a machine without
one, the CPU split into VAE_MNIST_CPU_DEVICES logical devices, for tests and demos). `multi_worker`
replicates it over the workers TF_CONFIG names, one replica per worker on CPUs (cluster.py starts
local ones). Either way `train.batch_size` stays the global batch: each replica takes its share.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import tensorflow as tf

from vae_mnist.common.errors import ClusterError, ConfigError
from vae_mnist.training.cluster import TF_CONFIG_ENV

CPU_DEVICES_ENV = "VAE_MNIST_CPU_DEVICES"


@dataclass(frozen=True)
class Topology:
    """Where a run trains: the strategy (None: Keras' own single-device fit), its replicas, the
    workers, and whether this process is the chief, the one that writes and logs."""

    kind: str
    strategy: tf.distribute.Strategy | None
    devices: tuple[str, ...]
    workers: int
    chief: bool

    @property
    def replicas(self) -> int:
        return 1 if self.strategy is None else self.strategy.num_replicas_in_sync

    def record(self) -> dict[str, Any]:
        """What the train run records of it, beside `train.distribution`."""
        return {
            "distribution.replicas": self.replicas,
            "distribution.workers": self.workers,
            "distribution.devices": ",".join(self.devices),
        }


def start(kind: str, batch_size: int) -> Topology:
    """The strategy for `train.distribution = kind`, over whose replicas `train.batch_size`, the
    global batch, must split evenly. It must come before any other TensorFlow work in the
    process: logical devices and collective ops are fixed once the runtime starts."""
    if kind == "none":
        return Topology(kind, None, ("default",), 1, True)
    if kind == "mirrored":
        devices = _local_devices()
        _check_split(kind, batch_size, len(devices))
        strategy = tf.distribute.MirroredStrategy(devices)
        if len(devices) == 1:
            print(
                f"note: train.distribution = mirrored over one device ({devices[0]}): no GPU is "
                f"visible; {CPU_DEVICES_ENV}=2 splits the CPU into 2 logical devices",
                file=sys.stderr,
            )
        return Topology(kind, strategy, tuple(devices), 1, True)
    task_type, index, cluster = tf_config()  # multi_worker: one replica per worker
    workers = sum(len(addresses) for addresses in cluster.values())
    _check_split(kind, batch_size, workers)
    strategy = tf.distribute.MultiWorkerMirroredStrategy(
        communication_options=tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.RING
        )
    )
    chief = task_type == "chief" or ("chief" not in cluster and index == 0)
    return Topology(kind, strategy, (f"/job:{task_type}/task:{index}",), workers, chief)


def _check_split(kind: str, batch_size: int, replicas: int) -> None:
    if batch_size % replicas:
        raise ConfigError(
            f"train.batch_size = {batch_size} does not split evenly over {replicas} "
            f"replicas (train.distribution = {kind}): it is the global batch, "
            f"and each replica takes an equal share; use a multiple of {replicas}"
        )


def _local_devices() -> list[str]:
    """The GPUs, else the CPU split into VAE_MNIST_CPU_DEVICES logical devices (default 1)."""
    if tf.config.list_physical_devices("GPU"):  # listing logical ones would start the runtime
        return [device.name for device in tf.config.list_logical_devices("GPU")]
    raw = os.environ.get(CPU_DEVICES_ENV, "1")
    if not raw.isdigit() or not 1 <= int(raw) <= 64:
        raise ConfigError(f"{CPU_DEVICES_ENV} = {raw!r}: must be a whole number from 1 to 64")
    count = int(raw)
    (cpu,) = tf.config.list_physical_devices("CPU")
    if count > 1 and len(tf.config.get_logical_device_configuration(cpu) or ()) != count:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
        )
    return [device.name for device in tf.config.list_logical_devices("CPU")]


def tf_config() -> tuple[str, int, dict[str, list[str]]]:
    """This process's task type and index and the cluster, from TF_CONFIG, checked."""
    raw = os.environ.get(TF_CONFIG_ENV)
    if not raw:
        raise ClusterError(
            f"train.distribution = multi_worker needs {TF_CONFIG_ENV} (the cluster and this "
            "worker's place in it); without it, pipeline/train.py starts local workers"
        )
    try:
        parsed = json.loads(raw)
        cluster = {
            str(job): [str(a) for a in addresses] for job, addresses in parsed["cluster"].items()
        }
        task_type, index = str(parsed["task"]["type"]), int(parsed["task"]["index"])
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise ClusterError(
            f"{TF_CONFIG_ENV} is not a cluster spec ({type(error).__name__}: {error}): expected "
            '{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": 0}}'
        ) from None
    if not 0 <= index < len(cluster.get(task_type, [])):
        raise ClusterError(
            f"{TF_CONFIG_ENV}: task {task_type} {index} is not in its cluster "
            f"({', '.join(f'{job}: {len(a)}' for job, a in cluster.items())})"
        )
    return task_type, index, cluster


@contextlib.contextmanager
def peers_answering(topology: Topology) -> Iterator[None]:
    """A worker that dies or drops off the network aborts every collective of the others
    (gRPC: Socket closed); each survivor then stops with one line instead of TensorFlow's
    three-page traceback."""
    try:
        yield
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError) as error:
        if topology.workers == 1:
            raise
        raise ClusterError(
            f"another worker of this {topology.workers}-worker run stopped answering "
            f"({_peer_reason(str(error.message))}); restart every worker"
        ) from None


def _peer_reason(message: str) -> str:
    """What the peer's gRPC channel said (`Socket closed`, `Connection reset by peer`), out of
    TensorFlow's page of node names."""
    found = re.search(r'grpc_message:"([^"]+)"', message) or re.search(
        r"aborted by: ([^\n]+)", message
    )
    return found.group(1) if found else message.strip().splitlines()[-1]


def fingerprint(params: Mapping[str, Any], data_digests: Mapping[str, str]) -> int:
    """A 52-bit digest of what every worker must share: the params and the data."""
    text = json.dumps({"params": dict(params), "data": dict(data_digests)}, sort_keys=True)
    return int(hashlib.sha256(text.encode()).hexdigest()[:13], 16)


def check_agreement(topology: Topology, value: int) -> None:
    """Stop every worker with one line unless all of them hold the same params and data: ones
    that differ would train a model no single params.yaml describes, or hang."""
    if topology.workers == 1 or topology.strategy is None:
        return
    strategy = topology.strategy
    local = tf.constant([float(value)], tf.float64)  # 52 bits: exact in a double
    held = tf.function(lambda: strategy.gather(strategy.run(tf.identity, (local,)), axis=0))()
    held = held.numpy()
    if len(set(held.tolist())) != 1:
        raise ClusterError(
            "the workers disagree on params.yaml or on the processed data: give every host "
            "the same commit, params and `dvc pull`, then rerun"
        )
