"""What a stage must never do with what it is given: unpickle a file, copy a secret from the
environment into MLflow, or listen beyond this machine by default."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.support.configs import override
from tests.support.paths import REPO
from vae_mnist.cli import cli
from vae_mnist.common.config import Config
from vae_mnist.common.errors import DataError
from vae_mnist.common.outputs import file_sha256
from vae_mnist.data.arrays import STATS_FILE, load_split, split_files
from vae_mnist.stages.evaluate import evaluate
from vae_mnist.stages.preprocess import preprocess
from vae_mnist.stages.train import train

SECRETS = {  # what a CI runner or a laptop keeps in its environment
    "AWS_SECRET_ACCESS_KEY": "aws-s3cr3t-7Qx9",
    "MLFLOW_TRACKING_PASSWORD": "mlflow-s3cr3t-2Wv",
    "GITHUB_TOKEN": "ghp_s3cr3t4Lk",
}


class Planted:
    """Unpickling this would leave a file behind: proof that code from the data ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (Path.touch, (str(self.marker),))  # type: ignore[return-value]


def test_a_pickled_array_is_refused_even_with_a_matching_digest(
    config: Config, raw_dir: Path, tmp_path: Path, mlflow_store: str
) -> None:
    processed = tmp_path / "processed"
    preprocess(override(config, {"data.val_size": 20}), raw_dir, processed)
    marker = tmp_path / "code-ran"
    labels = split_files(processed, "test")[1]
    np.save(labels, np.array([Planted(marker)], dtype=object), allow_pickle=True)
    stats = json.loads((processed / STATS_FILE).read_text())
    stats["files"][labels.name] = file_sha256(labels)  # forged to match
    (processed / STATS_FILE).write_text(json.dumps(stats))
    with pytest.raises(DataError, match="Object arrays cannot be loaded when allow_pickle=False"):
        load_split(processed, "test")
    assert not marker.exists()


def test_no_secret_from_the_environment_reaches_the_store(
    config: Config,
    raw_dir: Path,
    tmp_path: Path,
    mlflow_store: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    tiny = override(
        config,
        {"data.val_size": 20, "model.mlp.hidden_units": [16], "train.epochs": 1,
         "train.batch_size": 30, "evaluate.iwae_samples": 2},
    )  # fmt: skip
    processed, model = tmp_path / "processed", tmp_path / "vae.keras"
    preprocess(tiny, raw_dir, processed)
    train(tiny, processed, model, tmp_path / "training")
    evaluate(tiny, model, processed, tmp_path / "training", tmp_path / "evaluation")

    store = [tmp_path / "mlflow.db", *(tmp_path / "mlruns").rglob("*")]
    store += (tmp_path / "mlartifacts").rglob("*")
    written = [p for p in store if p.is_file()]
    assert len(written) > 20  # the database, the model's files, figures, metrics, cards
    for path in written:
        content = path.read_bytes()
        for name, value in SECRETS.items():
            assert value.encode() not in content, f"{name} is in {path}"


def test_make_serve_binds_this_machine_unless_told_otherwise() -> None:
    def dry_run(*args: str) -> str:
        make = ["make", "--dry-run", "serve", *args]
        return subprocess.run(make, cwd=REPO, capture_output=True, text=True, check=True).stdout

    assert "--host" not in dry_run()  # the command's own default, this machine only:
    for command in (cli.commands["serve"], cli.commands["explore"]):
        assert [p.default for p in command.params if p.name == "host"] == ["127.0.0.1"]
    assert "--host 0.0.0.0 " in dry_run("SERVE_HOST=0.0.0.0")  # a deliberate choice
