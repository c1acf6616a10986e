"""The `train` stage: fit the VAE on the processed arrays; write the model and its per-epoch
history (DVCLive); log the run and register the model."""

from __future__ import annotations

import contextlib
from pathlib import Path

from vae_mnist.common.config import Config
from vae_mnist.common.outputs import atomic_directory, file_sha256
from vae_mnist.common.pipeline import own_name
from vae_mnist.common.quantities import TRAIN, VAL
from vae_mnist.data.arrays import array_digest, load_split, split_files
from vae_mnist.model.vae import describe
from vae_mnist.tracking.models import EpochMetrics, log_model
from vae_mnist.tracking.runs import log_dataset, stage_run
from vae_mnist.training import distribution
from vae_mnist.training.callbacks import EpochLog
from vae_mnist.training.fit import fit_vae
from vae_mnist.training.trials import pruning_callbacks

STAGE = own_name(__name__)

SERVING_EXAMPLE = 8  # validation images that give the registered model its signature


def train(
    config: Config, processed_dir: Path, model_path: Path, history_dir: Path
) -> dict[str, float] | None:
    """Fit, write `model_path` and `history_dir`, and register the model; the summary logged.

    Under `train.distribution: multi_worker` only the chief does all that; any other worker
    trains its replica beside it, writes nothing and returns None.
    """
    flat = config.flat()
    topology = distribution.start(config.train.distribution, config.train.batch_size)  # first
    splits = {split: load_split(processed_dir, split) for split in (TRAIN, VAL)}
    (train_images, _), (val_images, _) = splits[TRAIN], splits[VAL]
    digests = {split: array_digest(images, labels) for split, (images, labels) in splits.items()}
    with distribution.peers_answering(topology), contextlib.ExitStack() as chief_only:
        distribution.check_agreement(topology, distribution.fingerprint(flat, digests))
        params = {**config.effective(), **topology.record()}  # the kind's own section only
        callbacks, save_to = [], None  # the other workers train beside the chief: no files, no run
        if topology.chief:
            chief_only.enter_context(stage_run(STAGE, config.mlflow.experiment_name, params))
            datasets = {
                split: log_dataset(
                    split, images, labels, split_files(processed_dir, split)[0], digests[split]
                )
                for split, (images, labels) in splits.items()
            }
            staging = chief_only.enter_context(atomic_directory(history_dir))
            callbacks = [EpochMetrics(datasets), EpochLog(staging), *pruning_callbacks()]
            save_to = model_path
        trained = fit_vae(
            config,
            train_images,
            val_images,
            callbacks,
            topology.strategy,
            save_to,
            verbose=2 if topology.chief else 0,
        )
        if not topology.chief:
            return None
        log_model(
            trained.served,
            val_images[:SERVING_EXAMPLE],
            model_path,
            file_sha256(model_path),
            params,
            trained.summary,
            datasets,
            config.mlflow.registered_model_name,
            describe(trained.model, config.model.kind),
        )
    return trained.summary
