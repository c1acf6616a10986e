"""The preprocess stage on tiny synthetic MNIST files, tracked in a real MLflow store (its pure
parts on arrays alone: tests/unit/data/test_splits.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest

from tests.support.configs import override
from vae_mnist.common.config import Config
from vae_mnist.common.errors import ConfigError
from vae_mnist.common.quantities import SPLITS
from vae_mnist.data.arrays import STATS_FILE, load_split
from vae_mnist.stages.preprocess import preprocess


@pytest.fixture
def small(config: Config) -> Config:
    return override(config, {"data.val_size": 20})


def test_outputs_shapes_ranges_and_stats(
    small: Config, raw_dir: Path, tmp_path: Path, mlflow_store: str
) -> None:
    out = tmp_path / "processed"
    stats = preprocess(small, raw_dir, out)
    shapes = {split: load_split(out, split)[0].shape for split in SPLITS}
    assert shapes == {"train": (180, 28, 28), "val": (20, 28, 28), "test": (50, 28, 28)}
    for split in SPLITS:
        images, labels = load_split(out, split)
        assert images.dtype == np.float32 and labels.dtype == np.uint8
        assert images.min() >= 0.0 and images.max() <= 1.0
    assert np.bincount(load_split(out, "val")[1]).tolist() == [2] * 10
    assert json.loads((out / STATS_FILE).read_text()) == stats
    assert stats["split"]["method"] == "stratified by digit"
    assert stats["splits"]["val"]["count"] == 20
    assert stats["splits"]["test"]["digit_counts"]["0"] == 5
    assert 0.4 < stats["splits"]["train"]["pixel_mean"] < 0.6  # uniform random pixels


def test_is_tracked_in_mlflow_with_dataset_digests(
    small: Config, raw_dir: Path, tmp_path: Path, mlflow_store: str
) -> None:
    stats = preprocess(small, raw_dir, tmp_path / "processed")
    client = mlflow.MlflowClient(mlflow_store)
    experiment = client.get_experiment_by_name(small.mlflow.experiment_name)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name.startswith("preprocess") and run.info.status == "FINISHED"
    assert run.data.tags["stage"] == "preprocess"
    assert run.data.params == {"seed": "42", "data.val_size": "20", "data.binarize": "none"}
    assert run.data.metrics["val/count"] == 20
    logged = {
        d.dataset.name: (d.dataset.digest, d.tags[0].value) for d in run.inputs.dataset_inputs
    }
    assert logged == {
        "mnist-train": (stats["splits"]["train"]["digest"], "training"),
        "mnist-val": (stats["splits"]["val"]["digest"], "validation"),
        "mnist-test": (stats["splits"]["test"]["digest"], "test"),
    }


def test_same_seed_same_bytes_other_seed_other_split(
    small: Config, raw_dir: Path, tmp_path: Path, mlflow_store: str
) -> None:
    first, second, reseeded = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    preprocess(small, raw_dir, first)
    preprocess(small, raw_dir, second)
    preprocess(override(small, {"seed": 7}), raw_dir, reseeded)
    for name in sorted(p.name for p in first.iterdir()):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    images_first, images_reseeded = load_split(first, "val")[0], load_split(reseeded, "val")[0]
    assert not np.array_equal(images_first, images_reseeded)


def test_static_binarization_draws_zeros_and_ones(
    small: Config, raw_dir: Path, tmp_path: Path, mlflow_store: str
) -> None:
    out = tmp_path / "processed"
    stats = preprocess(override(small, {"data.binarize": "static"}), raw_dir, out)
    for split in SPLITS:
        assert set(np.unique(load_split(out, split)[0]).tolist()) == {0.0, 1.0}
    assert stats["binarize"] == "static"
    assert 0.4 < stats["splits"]["train"]["pixel_mean"] < 0.6  # E[Bernoulli(p)] = p


def test_dynamic_binarization_only_records_the_choice(
    small: Config, raw_dir: Path, tmp_path: Path, mlflow_store: str
) -> None:
    plain, dynamic = tmp_path / "plain", tmp_path / "dynamic"
    preprocess(small, raw_dir, plain)
    stats = preprocess(override(small, {"data.binarize": "dynamic"}), raw_dir, dynamic)
    assert stats["binarize"] == "dynamic"
    for split in SPLITS:
        np.testing.assert_array_equal(load_split(plain, split)[0], load_split(dynamic, split)[0])


def test_val_size_larger_than_the_data_is_one_clear_error(
    config: Config, raw_dir: Path, tmp_path: Path, mlflow_store: str
) -> None:
    out = tmp_path / "processed"
    with pytest.raises(ConfigError, match=r"data\.val_size = 5000 leaves no training images"):
        preprocess(config, raw_dir, out)
    assert not out.exists()


def test_never_imports_tensorflow() -> None:
    code = "import sys, vae_mnist.stages.preprocess; print('tensorflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
