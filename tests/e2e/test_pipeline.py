"""End-to-end: real `dvc repro` in a temporary copy of the repository, real MNIST, real MLflow;
the session's built pipeline (conftest.built_pipeline) and copies of it."""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path

import mlflow
import pytest

from tests.support.workspace import BIN, STAGES, Repo
from vae_mnist.common.quantities import SPLITS
from vae_mnist.data.arrays import load_split


def test_data_stages_write_mnist_and_rerun_exactly_what_changed(
    built_pipeline: Repo, pipeline: Repo, mnist_mirror: Path
) -> None:
    processed = built_pipeline.root / "data" / "processed"
    sizes = {split: len(load_split(processed, split)[1]) for split in SPLITS}
    assert sizes == {"train": 55_000, "val": 5_000, "test": 10_000}
    for split in SPLITS:
        images, _ = load_split(processed, split)
        assert images.shape[1:] == (28, 28)
        assert images.min() == 0.0 and images.max() == 1.0
    assert sorted(p.name for p in (built_pipeline.root / "data" / "raw").iterdir()) == [
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
    ]

    # The store sits at the repository root, outside every out, ignored by git.
    root = built_pipeline.root
    store = root / "mlflow.db"
    assert store.is_file()
    store_files = ["mlflow.db", "mlflow.db.lock", "mlartifacts"]
    assert built_pipeline.run("git", "check-ignore", *store_files).stdout.split() == store_files
    client = mlflow.MlflowClient(f"sqlite:///{store}")
    experiment = client.get_experiment_by_name("vae-mnist")
    assert experiment.artifact_location == (root / "mlartifacts").as_uri()
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time"])
    ran_at = built_pipeline.run("git", "rev-parse", "HEAD~1").stdout.strip()
    assert [r.info.run_name for r in runs] == [f"{stage}@{ran_at[:7]}" for stage in STAGES]
    assert all(r.data.tags["mlflow.source.git.commit"] == ran_at for r in runs)
    assert all(r.info.status == "FINISHED" for r in runs)
    assert [r.data.tags["dvc.stage"] for r in runs] == STAGES
    download = runs[0].data.params
    assert download["train-images-idx3-ubyte.gz.source"] == str(
        mnist_mirror / "train-images-idx3-ubyte.gz"
    )
    assert download["train-images-idx3-ubyte.gz.sha256"].startswith("ba891046")

    assert pipeline.repro("preprocess") == []
    assert pipeline.status("preprocess") == {}
    pipeline.set_params({"data.val_size": 6000})
    assert pipeline.repro("preprocess") == ["preprocess"]
    assert len(load_split(pipeline.root / "data" / "processed", "val")[1]) == 6_000
    client = mlflow.MlflowClient(f"sqlite:///{pipeline.root / 'mlflow.db'}")
    (newest,) = client.search_runs(
        [experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=1
    )
    assert newest.data.tags["dvc.stage"] == "preprocess"
    assert newest.data.params["data.val_size"] == "6000"


def test_unreachable_mirror_fails_in_one_line_and_writes_nothing(tmp_path: Path) -> None:
    repo = Repo(tmp_path, "/nonexistent")
    result = repo.run(str(BIN / "dvc"), "repro", "download", check=False)
    assert result.returncode != 0
    ours = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert ours == [
        "error: MNIST_MIRROR=/nonexistent: no such directory "
        "(set it to a folder holding the four MNIST .gz files, or to an http(s) URL)"
    ]
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == [".gitignore"]


def test_params_typo_names_the_key_it_meant(tmp_path: Path) -> None:
    repo = Repo(tmp_path, "/nonexistent")
    repo.set_param("val_size:", "val_sise:")
    result = repo.run(sys.executable, "pipeline/preprocess.py", "data/raw", "out", check=False)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: params.yaml: unknown key 'data.val_sise'; did you mean 'data.val_size'? "
        "(and 1 more problem(s))"
    ]


def test_train_registers_a_version_per_training_and_prints_nothing_alarming(
    built_pipeline: Repo, pipeline: Repo
) -> None:
    # nothing alarming that the user cannot act on, on any CPU kind: TensorFlow's CPU wheel
    # probes no CUDA, its C++ INFO lines and oneDNN's notice are off, MLflow finds pip; its own
    # INFO lines may stay
    alarming = re.compile(r"^(?:[EWI]\d{4} |.*(?:\bERROR\b|\bWARNING\b|\w*Warning:))", re.MULTILINE)
    assert "Running stage 'train'" in built_pipeline.printed
    assert not alarming.findall(built_pipeline.printed), built_pipeline.printed
    loss = built_pipeline.root / "reports" / "training" / "plots" / "metrics" / "train" / "loss.tsv"
    assert loss.read_text().splitlines()[0] == "step\tloss" and len(loss.read_text().split()) == 4

    pipeline.set_params({"train.epochs": 2})
    assert pipeline.repro("train") == ["train"]
    assert pipeline.repro("train") == []

    root = pipeline.root
    store = f"sqlite:///{root / 'mlflow.db'}"
    client = mlflow.MlflowClient(store)
    versions = client.search_model_versions("name = 'vae-mnist'")
    assert sorted(int(v.version) for v in versions) == [1, 2]
    second = client.get_model_version("vae-mnist", "2")
    run = client.get_run(second.run_id)
    assert run.info.run_name.startswith("train@") and run.data.tags["stage"] == "train"
    assert run.data.params["train.epochs"] == "2"
    assert run.data.params["model.mlp.hidden_units"] == "[512, 256, 128]"
    history = client.get_metric_history(run.info.run_id, "val/neg_elbo")
    assert [m.step for m in history] == [1, 2]  # epoch n is step n, under the one name
    assert run.data.metrics["best.val/neg_elbo"] == history[-1].value < 200  # no early stopping
    assert not [name for name in run.data.metrics if "val_" in name]
    assert run.data.tags["registered_model_version"] == "2"
    model_sha = run.data.tags["model.sha256"]
    assert model_sha == hashlib.sha256((root / "models" / "vae.keras").read_bytes()).hexdigest()
    inputs = {d.dataset.name: d.dataset.digest for d in run.inputs.dataset_inputs}
    stats = json.loads((root / "data" / "processed" / "stats.json").read_text())
    assert inputs == {
        "mnist-train": stats["splits"]["train"]["digest"],
        "mnist-val": stats["splits"]["val"]["digest"],
    }

    # A fresh process, without this project's code, loads the registered model by name.
    code = (
        "import mlflow, numpy as np, sys\n"
        f"mlflow.set_tracking_uri('{store}')\n"
        "model = mlflow.pyfunc.load_model('models:/vae-mnist/2')\n"
        "out = model.predict(np.zeros((3, 28, 28), np.float32))\n"
        "keras_model = mlflow.keras.load_model('models:/vae-mnist/2')\n"
        "z_mean, _ = keras_model.get_layer('encoder')(np.zeros((1, 28, 28), np.float32))\n"
        "print(out.shape, z_mean.shape, 'vae_mnist' in sys.modules)\n"
    )
    result = pipeline.run(sys.executable, "-c", code)
    assert result.stdout.strip().splitlines()[-1] == "(3, 28, 28, 1) (1, 2) False"


def test_evaluate_reruns_alone_and_reaches_the_training_run(
    built_pipeline: Repo, pipeline: Repo
) -> None:
    evaluation = built_pipeline.root / "reports" / "evaluation"
    metrics = json.loads((evaluation / "metrics.json").read_text())
    assert metrics["iwae_samples"] == 2 and metrics["test_images"] == "grey levels in [0, 1]"
    assert metrics["test"]["neg_iwae"] < metrics["test"]["neg_elbo"] < 250
    assert len(list((evaluation / "figures").glob("*.png"))) == 7

    pipeline.set_params({"evaluate.iwae_samples": 3})
    assert pipeline.repro() == ["evaluate"]
    diff = pipeline.dvc("metrics", "diff", "--json").stdout
    changed = json.loads(diff)["reports/evaluation/metrics.json"]
    assert changed["iwae_samples"] == {"old": 2, "new": 3, "diff": 1}
    assert "test.neg_iwae" in changed
    # (an edit to evaluate's code, as to every module, is test_workflow's code-edit matrix)

    metrics = json.loads((pipeline.root / "reports" / "evaluation" / "metrics.json").read_text())
    client = mlflow.MlflowClient(f"sqlite:///{pipeline.root / 'mlflow.db'}")
    champion = client.get_model_version_by_alias("vae-mnist", "champion")
    train_run = client.get_run(champion.run_id)
    assert train_run.data.metrics["test/neg_elbo"] == pytest.approx(metrics["test"]["neg_elbo"])
    assert {a.path for a in client.list_artifacts(champion.run_id, "figures")} >= {
        "figures/manifold.png", "figures/reconstructions.png",
    }  # fmt: skip
