"""The faults tests' synthetic processed data and their reading of a store's runs."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest

from tests.support.configs import override
from vae_mnist.common.config import Config
from vae_mnist.stages.preprocess import preprocess

SMALL = {"data.val_size": 20}  # the synthetic raw files hold 200 training images


def runs_of(uri: str, experiment: str) -> list[mlflow.entities.Run]:
    client = mlflow.MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    return client.search_runs([found.experiment_id]) if found else []


@pytest.fixture
def processed(config: Config, raw_dir: Path, tmp_path: Path, mlflow_store: str) -> Path:
    out = tmp_path / "processed"
    preprocess(override(config, SMALL), raw_dir, out)
    return out
