"""A tiny registry for the champion tests: a training run with a registered version and its
evaluation, and the figures folder an evaluation logs."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest

from vae_mnist.tracking import registry
from vae_mnist.tracking.names import MODEL_DIGEST
from vae_mnist.tracking.runs import stage_run

MODEL = "vae-test"


def train_and_register(client: mlflow.MlflowClient, sha: str, model: str = MODEL) -> str:
    """A finished training run tagged with a model digest, registered as a new version."""
    with stage_run("train", "lineage") as run:
        mlflow.set_tag(MODEL_DIGEST, sha)
    if not client.search_registered_models(f"name = '{model}'"):
        client.create_registered_model(model)
    version = client.create_model_version(model, run.info.artifact_uri, run_id=run.info.run_id)
    return str(version.version)


@pytest.fixture
def figures(tmp_path: Path) -> Path:
    folder = tmp_path / "figures"
    folder.mkdir()
    (folder / "manifold.png").write_bytes(b"\x89PNG fake")
    return folder


def champion(client: mlflow.MlflowClient, model: str = MODEL) -> str:
    return str(client.get_model_version_by_alias(model, "champion").version)


def link(model: str, sha: str, metrics: dict[str, float], figures: Path) -> None:
    """What the evaluate stage does in its run once its metrics and figures are written."""
    if train_run := registry.training_run(sha):
        registry.share_with_training_run(train_run, metrics, [figures])
        if version := registry.registered_version(model, train_run):
            registry.elect_champion(model, version, metrics["test/neg_elbo"])
