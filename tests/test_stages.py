"""The train and evaluate stage functions end to end on tiny synthetic data and a real sqlite
MLflow store, fast enough for `make test-fast` (no MNIST, no network, no DVC)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import mlflow
import numpy as np
import pytest

from vae_mnist.config import Config
from vae_mnist.data.preprocess import preprocess_mnist
from vae_mnist.evaluation import FIGURES_DIR, METRICS_FILE, evaluate_vae
from vae_mnist.model import load_vae
from vae_mnist.training import HISTORY_COLUMNS, train_vae

from .conftest import override


@pytest.fixture
def tiny(config: Config) -> Config:
    return override(
        config,
        {
            "data.val_size": 20,
            "model.hidden_units": [16],
            "train.epochs": 2,
            "train.batch_size": 30,
            "evaluate.iwae_samples": 3,
        },
    )


def test_train_then_evaluate_write_their_outs_and_their_mlflow_records(
    tiny: Config, raw_dir: Path, tmp_path: Path, mlflow_store: str
) -> None:
    processed = tmp_path / "processed"
    preprocess_mnist(tiny, raw_dir, processed)
    model, history = tmp_path / "models" / "vae.keras", tmp_path / "reports" / "history.csv"

    summary = train_vae(tiny, processed, model, history)
    rows = list(csv.DictReader(history.read_text().splitlines()))
    assert [int(row["epoch"]) for row in rows] == [1, 2]
    assert tuple(rows[0]) == HISTORY_COLUMNS
    assert summary["val/neg_elbo"] == pytest.approx(float(rows[-1]["val_loss"]), rel=1e-6)
    assert load_vae(model)(np.zeros((1, 28, 28), np.float32)).shape == (1, 28, 28, 1)

    out = tmp_path / "reports" / "evaluation"
    metrics = evaluate_vae(tiny, model, processed, history, out)
    assert json.loads((out / METRICS_FILE).read_text()) == metrics
    assert (
        metrics["iwae_samples"] == 3 and metrics["test"]["neg_iwae"] <= metrics["test"]["neg_elbo"]
    )
    assert len(list((out / FIGURES_DIR).glob("*.png"))) == 7

    client = mlflow.MlflowClient(mlflow_store)
    experiment = client.get_experiment_by_name(tiny.mlflow.experiment_name)
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert set(runs) == {"preprocess", "train", "evaluate"}
    assert all(r.info.status == "FINISHED" for r in runs.values())
    train = runs["train"]
    assert train.data.params["train.epochs"] == "2"
    assert train.data.metrics["test/neg_elbo"] == metrics["test"]["neg_elbo"]  # from evaluate
    assert runs["evaluate"].data.tags["train_run_id"] == train.info.run_id
    name = tiny.mlflow.registered_model_name
    champion = client.get_model_version_by_alias(name, "champion")
    assert champion.run_id == train.info.run_id and str(champion.version) == "1"
    served = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    images = np.load(processed / "test_images.npy")[:4]
    np.testing.assert_allclose(served.predict(images), np.asarray(load_vae(model)(images)), 1e-5)
