"""The `train` stage: fit the VAE on the processed arrays; write the model and its history;
log the run and register the model."""

from __future__ import annotations

from pathlib import Path

import mlflow

from vae_mnist import history
from vae_mnist.config import Config
from vae_mnist.data.arrays import array_digest, load_split, split_files
from vae_mnist.fitting import check_batch_size, fit_vae
from vae_mnist.model import inference_model, save_vae
from vae_mnist.outputs import atomic_file, file_sha256
from vae_mnist.tracking.models import EpochMetrics, log_model
from vae_mnist.tracking.runs import log_dataset, stage_run

SPLITS = ("train", "val")
SERVING_EXAMPLE = 8  # validation images that give the registered model its signature


def train(
    config: Config, processed_dir: Path, model_path: Path, history_path: Path
) -> dict[str, float]:
    """Fit, write `model_path` and `history_path`, and register the model; the summary logged."""
    splits = {split: load_split(processed_dir, split) for split in SPLITS}
    (train_images, _), (val_images, _) = splits["train"], splits["val"]
    check_batch_size(config.train, len(train_images))  # before a run is opened for nothing
    with stage_run("train", config.mlflow.experiment_name, config.flat()):
        for split, (images, labels) in splits.items():
            source = split_files(processed_dir, split)[0]
            log_dataset(split, images, labels, source, array_digest(images, labels))
        trained = fit_vae(config, train_images, val_images, callbacks=[EpochMetrics()])
        save_vae(trained.model, model_path)
        with atomic_file(history_path) as staged:
            staged.write_text(history.to_csv(trained.history), encoding="utf-8")

        summary = trained.summary()
        mlflow.log_metrics(summary)
        log_model(
            inference_model(trained.model),
            val_images[:SERVING_EXAMPLE],
            config.mlflow.registered_model_name,
            file_sha256(model_path),
        )
    return summary
