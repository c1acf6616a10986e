"""Test metrics of a trained VAE: reconstruction, KL, negative ELBO, the IWAE bound, active units.

Every image gets k latent samples; one set of samples gives both the reconstruction term of the
ELBO (averaged over the k samples) and the importance-weighted bound, so the two are comparable
image by image. Work is done in batches of about EVAL_ROWS decoder rows, whatever k is, so memory
stays bounded; no Python loop runs over images or samples.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import keras
import mlflow
import numpy as np
import tensorflow as tf
from keras import ops

from vae_mnist import figures
from vae_mnist.config import Config
from vae_mnist.data.arrays import load_split
from vae_mnist.data.mnist import NUM_CLASSES
from vae_mnist.figures import first_of_each_digit
from vae_mnist.model import PIXELS, VAE, load_vae
from vae_mnist.objectives import (
    iwae_bound,
    kl_nats,
    log_importance_weights,
    reconstruction_nats,
)
from vae_mnist.outputs import atomic_directory, json_text
from vae_mnist.tracking import file_sha256, link_to_training, stage_run

METRICS_FILE = "metrics.json"
FIGURES_DIR = "figures"
EVAL_ROWS = 16_384  # decoder rows (images x samples) per compiled call
NATS = ("reconstruction", "kl", "neg_elbo", "neg_iwae")  # the per-image terms, in nats
ACTIVE_UNIT_THRESHOLD = 0.01  # Cov_x(E[z|x]) above this: the dimension is in use (Burda et al.)


def per_image_terms(vae: VAE, images: np.ndarray, k: int, seed: int) -> dict[str, np.ndarray]:
    """reconstruction, kl, neg_elbo, neg_iwae (each (N,), nats), z_mean (N, latent), and mse
    (N,): the per-pixel squared error of the reconstruction at z_mean, the registered model's
    output, so that a served model can be checked against this stage's number."""
    batch = max(1, min(len(images), EVAL_ROWS // k))
    latent = vae.encoder.outputs[0].shape[-1]
    noise = keras.random.SeedGenerator(seed)

    @tf.function  # TensorFlow's own (oneDNN) matmuls beat XLA's at these tall GEMMs here
    def decode(x):
        z_mean, z_log_var = vae.encoder(x, training=False)
        eps = keras.random.normal((k, batch, latent), seed=noise)
        z = z_mean[None] + ops.exp(0.5 * z_log_var)[None] * eps
        logits = vae.decoder(ops.reshape(z, (k * batch, latent)), training=False)
        return z, z_mean, z_log_var, logits, vae.decoder(z_mean, training=False)

    @tf.function(jit_compile=True)  # one fused pass over the k * batch * 784 logits
    def bound(x, z, z_mean, z_log_var, logits, logits_at_mean):
        x_k = ops.reshape(ops.tile(ops.reshape(x, (1, batch, PIXELS)), (k, 1, 1)), (-1, PIXELS))
        log_px_z = -ops.reshape(reconstruction_nats(x_k, logits), (k, batch))
        reconstruction = -ops.mean(log_px_z, axis=0)
        kl = kl_nats(z_mean, z_log_var)
        neg_iwae = -iwae_bound(log_importance_weights(log_px_z, z, z_mean, z_log_var))
        served = ops.sigmoid(ops.reshape(logits_at_mean, (batch, PIXELS)))
        mse = ops.mean(ops.square(ops.reshape(x, (batch, PIXELS)) - served), axis=-1)
        return reconstruction, kl, neg_iwae, z_mean, mse

    def terms(x):
        return bound(x, *decode(x))

    n = len(images)
    padded = np.concatenate([images, np.zeros((-n % batch, *images.shape[1:]), images.dtype)])
    parts = [terms(tf.constant(padded[i : i + batch])) for i in range(0, len(padded), batch)]
    reconstruction, kl, neg_iwae, z_mean, mse = (
        np.concatenate([np.asarray(p[j]) for p in parts])[:n] for j in range(5)
    )
    return {
        "reconstruction": reconstruction.astype(np.float64),
        "kl": kl.astype(np.float64),
        "neg_elbo": reconstruction.astype(np.float64) + kl,
        "neg_iwae": neg_iwae.astype(np.float64),
        "z_mean": z_mean,
        "mse": mse.astype(np.float64),
    }


def summarise(terms: dict[str, np.ndarray], labels: np.ndarray) -> dict[str, Any]:
    """Means over the test set and per digit (nats, and the mse of the served reconstruction),
    the IWAE gap, active units and bits per dim."""

    def means(mask: np.ndarray) -> dict[str, float]:
        out = {name: float(terms[name][mask].mean()) for name in NATS}
        out["iwae_gap"] = out["neg_elbo"] - out["neg_iwae"]
        rounded = {name: round(value, 4) for name, value in out.items()}
        return {**rounded, "mse": round(float(terms["mse"][mask].mean()), 7)}

    overall = means(np.ones(len(labels), bool))
    overall["bits_per_dim"] = round(overall["neg_iwae"] / (PIXELS * math.log(2)), 5)
    overall["active_units"] = int(
        (np.var(terms["z_mean"].astype(np.float64), axis=0) > ACTIVE_UNIT_THRESHOLD).sum()
    )
    per_digit = {str(d): means(labels == d) for d in range(NUM_CLASSES) if (labels == d).any()}
    return {"test": overall, "per_digit": per_digit}


def binarized_test_images(images: np.ndarray, binarize: str, seed: int) -> tuple[np.ndarray, str]:
    """The test images evaluation uses, and a line saying which they are (as papers do)."""
    if binarize == "dynamic":
        rng = np.random.default_rng(seed)
        drawn = (rng.random(images.shape, dtype=np.float32) < images).astype(np.float32)
        return drawn, f"binarized: one Bernoulli draw per pixel, seed {seed}"
    if binarize == "static":
        return images, "binarized in preprocess (static)"
    return images, "grey levels in [0, 1]"


def render_figures(
    vae: VAE,
    images: np.ndarray,
    labels: np.ndarray,
    terms: dict[str, np.ndarray],
    summary: dict[str, Any],
    history_csv: Path,
    folder: Path,
    seed: int,
) -> None:
    """Every figure of the evaluate stage into `folder`."""

    def decode(codes: np.ndarray) -> np.ndarray:
        return np.asarray(ops.sigmoid(vae.decoder(codes, training=False)))[..., 0]

    chosen = first_of_each_digit(labels)
    figures.reconstructions(
        images[chosen], np.asarray(vae(images[chosen]))[..., 0], folder / "reconstructions.png"
    )
    z_mean = terms["z_mean"]
    figures.latent_space(z_mean, labels, folder / "latent_space.png")
    figures.manifold(
        decode(figures.manifold_codes(z_mean)), z_mean.shape[1], folder / "manifold.png"
    )
    prior = np.random.default_rng(seed).standard_normal((100, z_mean.shape[1])).astype(np.float32)
    figures.samples(decode(prior), folder / "prior_samples.png")
    pairs = [(0, 6), (1, 7), (2, 5), (3, 8), (4, 9)]
    steps = np.linspace(0, 1, 10, dtype=np.float32)[:, None]
    codes = np.concatenate(
        [(1 - steps) * z_mean[chosen[a]] + steps * z_mean[chosen[b]] for a, b in pairs]
    )
    figures.interpolations(decode(codes), pairs, folder / "interpolations.png")
    figures.training_curves(history_csv, folder / "training_curves.png")
    figures.per_digit_elbo(summary["per_digit"], folder / "per_digit_neg_elbo.png")


def evaluate_vae(
    config: Config, model_path: Path, processed_dir: Path, history_csv: Path, out_dir: Path
) -> dict[str, Any]:
    """The `evaluate` stage: metrics.json and figures/ in `out_dir`, MLflow runs, the champion."""
    vae = load_vae(model_path)
    grey, labels = load_split(processed_dir, "test")
    images, which = binarized_test_images(grey, config.data.binarize, config.seed)
    k = config.evaluate.iwae_samples
    params = {key: config.flat()[key] for key in ("seed", "data.binarize", "evaluate.iwae_samples")}
    with stage_run("evaluate", config.mlflow.experiment_name, params):
        terms = per_image_terms(vae, images, k=k, seed=config.seed)
        summary = summarise(terms, labels)
        metrics = {**summary, "iwae_samples": k, "test_images": which}
        with atomic_directory(out_dir) as staging:
            (staging / FIGURES_DIR).mkdir()
            render_figures(
                vae, images, labels, terms, summary, history_csv, staging / FIGURES_DIR, config.seed
            )
            (staging / METRICS_FILE).write_text(json_text(metrics), encoding="utf-8")
        test_metrics = {f"test/{name}": value for name, value in summary["test"].items()}
        mlflow.log_metrics(test_metrics)
        mlflow.log_artifacts(str(out_dir / FIGURES_DIR), FIGURES_DIR)
        mlflow.log_dict(metrics, METRICS_FILE)
        link_to_training(
            config.mlflow.registered_model_name,
            file_sha256(model_path),
            test_metrics,
            out_dir / FIGURES_DIR,
        )
    return metrics
