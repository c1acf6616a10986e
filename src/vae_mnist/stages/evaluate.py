"""The `evaluate` stage: test metrics and figures of the trained VAE, logged to its own run, to
the training run and to the logged model, and the `champion` alias moved by the champion rule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from keras import ops

from vae_mnist.common import history
from vae_mnist.common.config import Config
from vae_mnist.common.outputs import atomic_directory, file_sha256, json_text
from vae_mnist.common.pipeline import (
    FIGURES_DIR,
    LATENT,
    LATENT_FILES,
    METRICS_FILE,
    PER_DIGIT_FILE,
    own_name,
    stage_params,
)
from vae_mnist.common.quantities import TEST, metric
from vae_mnist.data.arrays import array_digest, load_split, save_array, split_files
from vae_mnist.evaluation import figures
from vae_mnist.evaluation.memory import check_fits
from vae_mnist.evaluation.metrics import (
    binarized_test_images,
    per_digit_records,
    per_image_terms,
    summarise,
)
from vae_mnist.model.files import load_vae
from vae_mnist.model.vae import VAE
from vae_mnist.tracking import registry
from vae_mnist.tracking.runs import log_dataset, stage_run

STAGE = own_name(__name__)


def evaluate(
    config: Config, model_path: Path, processed_dir: Path, history_dir: Path, out_dir: Path
) -> dict[str, Any]:
    """metrics.json, per_digit.json, figures/ and latent/ in `out_dir`; returns what
    metrics.json holds. Computed, written (all or nothing), then logged and published."""
    vae = load_vae(model_path)
    k = config.evaluate.iwae_samples
    check_fits(k, vae.decoder)  # before any work: the model's layers say what k costs
    grey, labels = load_split(processed_dir, TEST)
    images, which = binarized_test_images(grey, config.data.binarize, config.seed)
    params = config.params(stage_params(STAGE))
    digest = file_sha256(model_path)
    with stage_run(STAGE, config.mlflow.experiment_name, params):
        train_run, model_id = registry.training_run(digest), registry.logged_model(digest)
        source = split_files(processed_dir, TEST)[0]
        test_data = log_dataset(TEST, grey, labels, source, array_digest(grey, labels), model_id)

        terms = per_image_terms(vae, images, k=k, seed=config.seed)
        summary = summarise(terms, labels)
        metrics = {TEST: summary[TEST], "iwae_samples": k, "test_images": which}
        records = per_digit_records(summary["per_digit"])

        with atomic_directory(out_dir) as staging:
            (staging / FIGURES_DIR).mkdir()
            render_figures(
                vae, images, labels, terms, summary, history_dir, staging / FIGURES_DIR, config.seed
            )
            write_latent(terms["z_mean"], labels, staging / LATENT)
            (staging / METRICS_FILE).write_text(json_text(metrics), encoding="utf-8")
            (staging / PER_DIGIT_FILE).write_text(json_text(records), encoding="utf-8")

        test_metrics = {metric(TEST, name): value for name, value in summary[TEST].items()}
        shared = [out_dir / FIGURES_DIR, out_dir / LATENT]
        documents = {METRICS_FILE: metrics, PER_DIGIT_FILE: records}
        registry.log_test_results(test_metrics, model_id, test_data, documents, shared)
        registry.publish_test_results(
            config.mlflow.registered_model_name, train_run, test_metrics, shared,
            out_dir / FIGURES_DIR,
        )  # fmt: skip
    return metrics


def write_latent(z_mean: np.ndarray, labels: np.ndarray, folder: Path) -> None:
    """The test set's latent means and labels, which the explorer draws the latent space from."""
    folder.mkdir()
    for name, array in zip(LATENT_FILES, (z_mean.astype(np.float32), labels), strict=True):
        save_array(folder / name, array)


def render_figures(
    vae: VAE,
    images: np.ndarray,
    labels: np.ndarray,
    terms: dict[str, np.ndarray],
    summary: dict[str, Any],
    history_dir: Path,
    folder: Path,
    seed: int,
) -> None:
    """The figures, drawn by vae_mnist.evaluation.figures with this model's decoder."""

    def decode(codes: np.ndarray) -> np.ndarray:
        return np.asarray(ops.sigmoid(vae.decoder(codes, training=False)))[..., 0]

    shown = images[figures.first_of_each_digit(labels)]
    figures.render_all(
        decode,
        images,
        labels,
        np.asarray(vae(shown))[..., 0],
        terms["z_mean"],
        summary["per_digit"],
        history.read(history_dir),
        folder,
        seed,
    )
