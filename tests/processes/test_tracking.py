"""Stages in processes of their own share a fresh sqlite store (its schema made once). The store
in process: tests/unit/tracking/test_tracking.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow


def test_concurrent_stages_share_a_fresh_sqlite_store(tmp_path: Path) -> None:
    """What `dvc queue start -j 4` does on first use: four stages open one new store at once."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    code = "from vae_mnist.tracking.store import experiment_id; print(experiment_id('grid'))"
    command = [sys.executable, "-c", code]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    stages = [subprocess.Popen(command, env=env, cwd=tmp_path, **pipes) for _ in range(4)]
    outcomes = [(stage.wait(timeout=300), *stage.communicate()) for stage in stages]
    assert [code for code, _, _ in outcomes] == [0, 0, 0, 0], [err for _, _, err in outcomes]
    assert len({out.strip() for _, out, _ in outcomes}) == 1  # one experiment, not four
    client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    assert [e.name for e in client.search_experiments()] == ["grid", "Default"]
