"""Every stage function end to end on tiny synthetic data and a real sqlite MLflow store, fast
enough for `make test-fast` (no MNIST, no network, no DVC)."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import mlflow
import numpy as np
import pytest

from tests.support.configs import override
from tests.support.data import file_table
from vae_mnist.common.config import Config
from vae_mnist.common.errors import DownloadError
from vae_mnist.common.history import read as read_history
from vae_mnist.common.pipeline import FIGURES_DIR, METRICS_FILE, PER_DIGIT_FILE
from vae_mnist.common.quantities import HISTORY_COLUMNS
from vae_mnist.data import mirrors
from vae_mnist.model.files import load_vae
from vae_mnist.stages.download import download
from vae_mnist.stages.evaluate import evaluate
from vae_mnist.stages.preprocess import preprocess
from vae_mnist.stages.train import train


@pytest.fixture
def tiny(config: Config) -> Config:
    return override(
        config,
        {
            "data.val_size": 20,
            "model.mlp.hidden_units": [16],
            "train.epochs": 2,
            "train.batch_size": 30,
            "evaluate.iwae_samples": 3,
        },
    )


def test_download_verifies_every_file_and_replaces_the_folder_only_when_all_are_good(
    config: Config,
    raw_dir: Path,
    tmp_path: Path,
    mlflow_store: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    table = file_table(raw_dir)  # the stage's own table names MNIST's files
    monkeypatch.setattr(mirrors, "MNIST_FILES", table)
    monkeypatch.setenv("MNIST_MIRROR", str(raw_dir))
    out = tmp_path / "data" / "raw"
    name = sorted(table)[-1]  # fetched last: the other three are good by then
    good = (raw_dir / name).read_bytes()

    (raw_dir / name).write_bytes(gzip.compress(b"not the file"))
    with pytest.raises(DownloadError, match=name):
        download(config, out)
    assert not out.parent.exists() or list(out.parent.iterdir()) == []  # no out, no staging

    (raw_dir / name).write_bytes(good)
    out.mkdir(parents=True)
    (out / "stale.gz").write_bytes(b"left by an older run")
    fetched = download(config, out)
    assert sorted(p.name for p in out.iterdir()) == sorted(table)  # replaced whole
    assert all((out / n).read_bytes() == (raw_dir / n).read_bytes() for n in table)
    assert [f.sha256 for f in fetched] == [table[f.name].sha256 for f in fetched]
    client = mlflow.MlflowClient(mlflow_store)
    experiment = client.get_experiment_by_name(config.mlflow.experiment_name)
    runs = {r.info.status: r for r in client.search_runs([experiment.experiment_id])}
    assert sorted(runs) == ["FAILED", "FINISHED"]  # the failed attempt, then this one
    run = runs["FINISHED"]
    assert run.data.tags["stage"] == "download" and run.info.run_name.startswith("download")
    assert run.data.params[f"{name}.sha256"] == table[name].sha256
    assert run.data.params[f"{name}.source"].startswith(str(raw_dir.resolve()))
    assert run.data.metrics[f"{name}.bytes"] == len(good)

    (raw_dir / name).write_bytes(gzip.compress(b"not the file"))
    with pytest.raises(DownloadError, match=name):
        download(config, out)
    assert sorted(p.name for p in out.iterdir()) == sorted(table)  # the good folder stays
    assert [p.name for p in out.parent.iterdir()] == ["raw"]  # no staging folder left behind


def test_train_then_evaluate_write_their_outs_and_their_mlflow_records(
    tiny: Config, raw_dir: Path, tmp_path: Path, mlflow_store: str
) -> None:
    processed = tmp_path / "processed"
    preprocess(tiny, raw_dir, processed)
    model, history = tmp_path / "models" / "vae.keras", tmp_path / "reports" / "training"

    summary = train(tiny, processed, model, history)
    rows = read_history(history)
    assert [row["epoch"] for row in rows] == [1, 2]
    assert tuple(rows[0]) == HISTORY_COLUMNS
    assert summary["best.val/neg_elbo"] == pytest.approx(rows[-1]["val/neg_elbo"], rel=1e-6)
    assert load_vae(model)(np.zeros((1, 28, 28), np.float32)).shape == (1, 28, 28, 1)

    out = tmp_path / "reports" / "evaluation"
    metrics = evaluate(tiny, model, processed, history, out)
    assert json.loads((out / METRICS_FILE).read_text()) == metrics
    assert (
        metrics["iwae_samples"] == 3 and metrics["test"]["neg_iwae"] <= metrics["test"]["neg_elbo"]
    )
    assert len(list((out / FIGURES_DIR).glob("*.png"))) == 7
    digits = [r["digit"] for r in json.loads((out / PER_DIGIT_FILE).read_text())]
    assert digits == [str(d) for d in sorted(set(np.load(processed / "test_labels.npy")))]

    client = mlflow.MlflowClient(mlflow_store)
    experiment = client.get_experiment_by_name(tiny.mlflow.experiment_name)
    runs = {r.data.tags["stage"]: r for r in client.search_runs([experiment.experiment_id])}
    assert set(runs) == {"preprocess", "train", "evaluate"}
    assert all(r.info.status == "FINISHED" for r in runs.values())
    assert all(r.info.run_name.split("@")[0] == stage for stage, r in runs.items())
    trained = runs["train"]
    assert trained.data.params["train.epochs"] == "2"
    assert trained.data.metrics["test/neg_elbo"] == metrics["test"]["neg_elbo"]  # from evaluate
    steps = [m.step for m in client.get_metric_history(trained.info.run_id, "val/neg_elbo")]
    assert steps == [row["epoch"] for row in rows]  # epoch n is step n in MLflow and DVCLive
    assert runs["evaluate"].data.tags["train_run_id"] == trained.info.run_id
    name = tiny.mlflow.registered_model_name
    champion = client.get_model_version_by_alias(name, "champion")
    assert champion.run_id == trained.info.run_id and str(champion.version) == "1"

    # model-centric: the logged model holds its params, validation and test metrics by dataset
    assert champion.source.startswith("models:/m-")  # the version is the logged model
    logged = client.get_logged_model(champion.source.removeprefix("models:/"))
    assert logged.params["train.epochs"] == "2"
    linked = {(m.key, m.dataset_name): m.value for m in logged.metrics}
    assert linked[("test/neg_elbo", "mnist-test")] == metrics["test"]["neg_elbo"]
    assert linked[("best.val/neg_elbo", "mnist-val")] == summary["best.val/neg_elbo"]
    evaluated = client.get_run(runs["evaluate"].info.run_id).inputs  # search_runs omits models
    assert [d.dataset.name for d in evaluated.dataset_inputs] == ["mnist-test"]
    assert [m.model_id for m in evaluated.model_inputs] == [logged.model_id]
    # the registry holds the DVC artifact's bytes, and reads as a model card
    files = Path(mlflow.artifacts.download_artifacts(f"models:/{name}/1", dst_path=str(tmp_path)))
    checkpoint = files / "checkpoint" / "vae.keras"
    assert hashlib.sha256(checkpoint.read_bytes()).hexdigest() == champion.tags["model.sha256"]
    assert checkpoint.read_bytes() == model.read_bytes()
    card = client.get_model_version(name, "1").description
    assert f"trained by run `{trained.info.run_id}`" in card and "### Test results" in card
    assert f"test/neg_elbo {metrics['test']['neg_elbo']:.7g}" in card
    assert "champion" in client.get_registered_model(name).description
    # every run, the version and its card name the machine the numbers were computed on
    assert {r.data.tags["machine.id"] for r in runs.values()} == {champion.tags["machine.id"]}
    assert f"Machine `{champion.tags['machine.id']}`: " in card
    served = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    images = np.load(processed / "test_images.npy")[:4]
    np.testing.assert_allclose(served.predict(images), np.asarray(load_vae(model)(images)), 1e-5)
