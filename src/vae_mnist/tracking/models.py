"""The train run's Keras side: per-epoch metrics, and the model logged and registered.

Apart from runs.py because it imports Keras and TensorFlow, which the data stages never load.
"""

from __future__ import annotations

import os
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import keras
import mlflow
import mlflow.keras
import numpy as np
import tensorflow as tf
from mlflow.models import Model, infer_signature

from vae_mnist.common.config import project_root
from vae_mnist.common.machine import fingerprint
from vae_mnist.common.outputs import file_sha256
from vae_mnist.common.quantities import EPOCH_NAMES, VAL
from vae_mnist.tracking import cards, governance, names


def _keras_flavor(saved: dict[str, str]) -> types.ModuleType:
    """mlflow.keras, whose save_model first creates the model's folder: with an input example it
    writes the example before the folder exists and fails (mlflow/mlflow#16183, still so in
    3.17). It also takes Model.log's `validate_serving_input`, which the flavor's own save_model
    would refuse, and puts the sha256 of the file it saved into `saved`: the digest `make serve`
    checks the downloaded file against."""

    def save_model(path: str, validate_serving_input: bool = True, **kwargs: Any) -> None:
        os.makedirs(path, exist_ok=True)
        mlflow.keras.save_model(path=path, **kwargs)
        saved[names.SERVED_DIGEST] = file_sha256(Path(path, *names.SERVED_FILE))

    flavor = types.ModuleType("mlflow.keras")
    flavor.save_model = save_model  # type: ignore[attr-defined]
    return flavor


class EpochMetrics(mlflow.keras.MlflowCallback):
    """MLflow's Keras callback under the history's names (`val/neg_elbo`, ...), epoch n (from 1)
    as step n as in DVCLive's files, each split's metrics linked to its dataset; less its
    step-less `validation_*` copies of the validation metrics."""

    def __init__(self, datasets: Mapping[str, mlflow.data.Dataset]) -> None:
        super().__init__()
        self.datasets = datasets

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        by_split: dict[str | None, dict[str, float]] = {}
        for key, value in (logs or {}).items():
            name = EPOCH_NAMES.get(key, key)
            split = name.split("/")[0] if "/" in name else None
            by_split.setdefault(split, {})[name] = float(value)
        for split, metrics in by_split.items():
            mlflow.log_metrics(
                metrics, step=epoch + 1, synchronous=False, dataset=self.datasets.get(split)
            )

    def on_test_end(self, logs: dict[str, Any] | None = None) -> None:
        pass


def log_model(
    served: keras.Model,
    example: np.ndarray,
    checkpoint: Path,
    digest: str,
    params: Mapping[str, Any],
    summary: Mapping[str, float],
    datasets: Mapping[str, mlflow.data.Dataset],
    registered_name: str,
    network: str,
) -> str:
    """Log the served model to the active run, with the checkpoint it was built from, and
    register it as a new version of `registered_name` (of its candidates model where the store is
    governed: tracking/governance.py), described by its model card; the version.

    The logged model takes the params and the summary (the validation numbers of the epoch whose
    weights it holds), linked to the validation dataset. The checkpoint (the DVC artifact, the
    full VAE) goes into the model's own files, so the registry holds the bytes that its
    `model.sha256` tag names.
    """
    mlflow.set_tag(names.MODEL_DIGEST, digest)
    saved: dict[str, str] = {}
    info = Model.log(
        artifact_path=None,
        name=names.MODEL_ARTIFACT,
        flavor=_keras_flavor(saved),
        model=served,
        signature=infer_signature(example, keras.ops.convert_to_numpy(served(example))),
        input_example=example,
        # Not predicted at logging: under TensorFlow's op determinism, Keras' predict makes tf.data
        # log a harmless ERROR line. The tests predict with the registered model instead.
        validate_serving_input=False,
        params=dict(params),
        # What the served model needs (it holds standard layers only), stated rather than
        # inferred: inference is slow here and would list this project's whole environment.
        pip_requirements=[f"keras=={keras.__version__}", f"tensorflow=={tf.__version__}"],
        tags={names.MODEL_DIGEST: digest},
    )
    mlflow.log_metrics(dict(summary), model_id=info.model_id, dataset=datasets[VAL])
    client = mlflow.MlflowClient()
    client.log_model_artifact(info.model_id, str(checkpoint), names.CHECKPOINT)
    machine = fingerprint(project_root())
    version_tags = {
        names.MODEL_DIGEST: digest,
        names.machine_tag("id"): machine["id"],
        governance.REGISTERED_BY: governance.user(),
        **saved,  # the served file's digest
    }
    target = governance.registration_target(registered_name)  # its candidates, if governed
    version = str(mlflow.register_model(info.model_uri, target, tags=version_tags).version)
    if target == registered_name:  # a governed served model is described by its maintainers
        client.update_registered_model(target, cards.model_description(target))
    run_id = mlflow.active_run().info.run_id
    data = {split: dataset.digest for split, dataset in datasets.items()}
    card = cards.version_card(
        target, version, run_id, params, data, summary, digest, machine, network
    )
    client.update_model_version(target, version, card)
    mlflow.set_tag(names.REGISTERED_VERSION, version)
    return version
