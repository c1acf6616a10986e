"""The train run's Keras side: per-epoch metrics, and the model logged and registered.

Apart from runs.py because it imports Keras and TensorFlow, which the data stages never load.
"""

from __future__ import annotations

from typing import Any

import keras
import mlflow
import mlflow.keras
import numpy as np
import tensorflow as tf
from mlflow.models import infer_signature

from vae_mnist.quantities import EPOCH_NAMES
from vae_mnist.tracking import names


class EpochMetrics(mlflow.keras.MlflowCallback):
    """MLflow's Keras callback, under the history's names (`val/neg_elbo`, ...), epoch as step,
    less its step-less `validation_*` copies of the validation metrics."""

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if logs is not None:
            super().on_epoch_end(epoch, {EPOCH_NAMES.get(k, k): v for k, v in logs.items()})

    def on_test_end(self, logs: dict[str, Any] | None = None) -> None:
        pass


def log_model(
    served: keras.Model, example: np.ndarray, registered_name: str, digest: str
) -> str | None:
    """Log the served model to the active run and register it as a new version of
    `registered_name`, tagged with the digest of the file it was built from; the version."""
    mlflow.set_tag(names.MODEL_DIGEST, digest)
    info = mlflow.keras.log_model(
        served,
        name=names.MODEL_ARTIFACT,
        signature=infer_signature(example, keras.ops.convert_to_numpy(served(example))),
        registered_model_name=registered_name,
        # What the served model needs (it holds standard layers only), stated rather than
        # inferred: inference is slow here and would list this project's whole environment.
        pip_requirements=[f"keras=={keras.__version__}", f"tensorflow=={tf.__version__}"],
        tags={names.MODEL_DIGEST: digest},
    )
    if info.registered_model_version is None:
        return None
    version = str(info.registered_model_version)
    mlflow.set_tag(names.REGISTERED_VERSION, version)
    return version
