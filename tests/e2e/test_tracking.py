"""A stage logs to a real `mlflow server` started on 127.0.0.1 (and stopped by PID). The store
in process: tests/unit/tracking/test_tracking.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest

from tests.support.configs import override
from vae_mnist.common.config import Config
from vae_mnist.common.ports import free_port
from vae_mnist.stages.preprocess import preprocess
from vae_mnist.tracking.store import EXPERIMENT_KIND_TAG

BIN = Path(sys.executable).parent


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    """A real `mlflow server` on 127.0.0.1 with its own sqlite store and artifact root."""
    port = free_port()
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--artifacts-destination", str(tmp_path / "server-artifacts")],
        stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                assert server.poll() is None, (tmp_path / "server.log").read_text()
                time.sleep(1)
        else:
            pytest.fail("mlflow server did not start within 120 s")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def test_a_stage_logs_to_a_real_mlflow_server(
    config: Config,
    raw_dir: Path,
    tmp_path: Path,
    mlflow_server: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    stats = preprocess(override(config, {"data.val_size": 20}), raw_dir, tmp_path / "out")
    client = mlflow.MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name(config.mlflow.experiment_name)
    assert experiment.tags.items() >= EXPERIMENT_KIND_TAG.items()
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.data.tags["stage"] == "preprocess" and run.info.status == "FINISHED"
    assert {d.dataset.digest for d in run.inputs.dataset_inputs} == {
        split["digest"] for split in stats["splits"].values()
    }
    # the artifact went through the server to its artifact store, and comes back from it
    local = client.download_artifacts(run.info.run_id, "stats.json", str(tmp_path))
    assert json.loads(Path(local).read_text()) == stats
    mlflow.set_tracking_uri(None)
