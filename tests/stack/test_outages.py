"""The team's store going down: object store, then database, then the server itself. Each time
the first stage that needs it (download: every stage opens its run and reads its artifact folder
first) fails with one line naming the tracking URI, no traceback, and no output.

The tests take down the services of their own stack, one more each, in file order, so the
session's shared stack stays whole. How long each failure takes is printed by
benchmarks/store_outages.py (a figure, not a timed test).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest

from tests.support.stack import log_in, throwaway_stack
from tests.support.workspace import Repo
from vae_mnist_tools.stack.control import stop_service
from vae_mnist_tools.stack.state import Stack


@pytest.fixture(scope="module")
def failing_stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    """A stack of this module's own, since its tests stop its services."""
    with throwaway_stack(request) as stack:
        yield stack


def download_fails_in_one_line(tmp_path: Path, mirror: Path, stack: Stack) -> str:
    repo = Repo(tmp_path, str(mirror.resolve()))
    repo.env.update(stack.client_env())
    result = repo.dvc("repro", "download", check=False)
    assert result.returncode != 0
    ours = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(ours) == 1, result.stderr
    assert ours[0].startswith(f"error: MLflow store {stack.tracking_uri} ")
    assert "Traceback" not in result.stdout + result.stderr
    assert not (tmp_path / "data" / "raw").exists()  # nothing for DVC to keep
    return ours[0]


def test_object_store_down(
    failing_stack: Stack, tmp_path: Path, mnist_mirror: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log_in(failing_stack, monkeypatch)
    stop_service(failing_stack.folder, "radosgw")
    line = download_fails_in_one_line(tmp_path, mnist_mirror, failing_stack)
    assert "mlflow-artifacts" in line  # the artifact store is what failed
    # the database still answers: the run is closed as FAILED, not left RUNNING
    client = mlflow.MlflowClient(failing_stack.tracking_uri)
    experiment = client.get_experiment_by_name("vae-mnist")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.data.tags["stage"] == "download" and run.info.status == "FAILED"


def test_database_down(failing_stack: Stack, tmp_path: Path, mnist_mirror: Path) -> None:
    stop_service(failing_stack.folder, "postgres")
    line = download_fails_in_one_line(tmp_path, mnist_mirror, failing_stack)
    assert "error responses" in line  # the server answers, with errors


def test_server_down(failing_stack: Stack, tmp_path: Path, mnist_mirror: Path) -> None:
    stop_service(failing_stack.folder, "mlflow")
    line = download_fails_in_one_line(tmp_path, mnist_mirror, failing_stack)
    assert "Connection refused" in line
