"""Local multi-worker training: the train stage's own process as the chief of N worker processes
on 127.0.0.1, wired by TF_CONFIG, as `torchrun` does for PyTorch.

`train.distribution: multi_worker` without TF_CONFIG starts them (VAE_MNIST_WORKERS, default 2):
each worker reruns the stage's command line with its own TF_CONFIG, and only the chief writes
the model, the history and the MLflow run. On real hosts TF_CONFIG is set on each, by hand or by
the cluster manager, and nothing is started here (docs/distributed.md).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence

from vae_mnist.common.errors import ClusterError, ConfigError
from vae_mnist.common.ports import LOCALHOST, free_ports

TF_CONFIG_ENV = "TF_CONFIG"  # TensorFlow's: the cluster and this process's place in it
WORKERS_ENV = "VAE_MNIST_WORKERS"
DEFAULT_WORKERS = 2
HOST = LOCALHOST
STOP_GRACE_S = 10  # how long a worker has to exit on SIGTERM before it is killed


def tf_config(addresses: Sequence[str], index: int) -> str:
    """TF_CONFIG for worker `index` of a cluster of `addresses` (worker 0 is the chief)."""
    return json.dumps(
        {"cluster": {"worker": list(addresses)}, "task": {"type": "worker", "index": index}}
    )


def free_addresses(count: int) -> list[str]:
    """`count` addresses on this machine for the workers' servers, free now."""
    return [f"{HOST}:{port}" for port in free_ports(count, HOST)]


def workers_wanted() -> int:
    raw = os.environ.get(WORKERS_ENV, str(DEFAULT_WORKERS))
    if not raw.isdigit() or not 1 <= int(raw) <= 64:
        raise ConfigError(f"{WORKERS_ENV} = {raw!r}: must be a whole number from 1 to 64")
    return int(raw)


@contextlib.contextmanager
def local_workers(distribution: str, argv: Sequence[str]) -> Iterator[None]:
    """Inside it, this process is worker 0 (the chief) of a local cluster whose other workers
    run `python argv...`; outside `multi_worker`, or with TF_CONFIG set, it does nothing.

    Leaving it waits for the workers and fails if one failed; an error or an interruption in the
    chief stops them first (SIGTERM, then SIGKILL), so that none is left behind.
    """
    if distribution != "multi_worker" or os.environ.get(TF_CONFIG_ENV):
        yield
        return
    count = workers_wanted()
    addresses = free_addresses(count)
    print(
        f"note: train.distribution = multi_worker and {TF_CONFIG_ENV} is unset: training on "
        f"{count} local workers ({', '.join(addresses)}), this process the chief "
        f"({WORKERS_ENV} sets how many)",
        file=sys.stderr,
    )
    os.environ[TF_CONFIG_ENV] = tf_config(addresses, 0)
    workers: list[subprocess.Popen[bytes]] = []
    try:
        for index in range(1, count):
            env = {**os.environ, TF_CONFIG_ENV: tf_config(addresses, index)}
            workers.append(subprocess.Popen([sys.executable, *argv], env=env))
        try:
            yield
        except Exception as error:
            # The chief's error is about the collective a dead worker aborted: name the worker.
            if failed := _failed(workers, wait=False):
                raise ClusterError(failed) from error
            raise
        if failed := _failed(workers, wait=True):
            raise ClusterError(failed)
    finally:
        _stop(workers)
        del os.environ[TF_CONFIG_ENV]


def _failed(workers: Sequence[subprocess.Popen[bytes]], wait: bool) -> str:
    """Which workers ended badly (all of them waited for, or only those already ended)."""
    ended = [
        (index, code)
        for index, worker in enumerate(workers, start=1)
        if (code := worker.wait() if wait else worker.poll()) not in (None, 0)
    ]
    return "; ".join(
        f"local worker {index} "
        + (f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with {code}")
        for index, code in ended
    )


def _stop(workers: Sequence[subprocess.Popen[bytes]]) -> None:
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    for worker in workers:
        try:
            worker.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
