"""Test metrics of a trained VAE: reconstruction, KL, negative ELBO, the IWAE bound, active units.

Arrays in, arrays and numbers out: no files, no MLflow (stages/evaluate.py writes and logs them).

Every image gets k latent samples; one set of samples gives both the reconstruction term of the
ELBO (averaged over the k samples) and the importance-weighted bound, so the two are comparable
image by image. Work is done in batches of about EVAL_ROWS decoder rows, whatever k is (one image
per batch once k is larger), so memory stays bounded; no Python loop runs over images or samples.
memory.py estimates that memory, and the evaluate stage refuses a k for which it is too much.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import ops
from tqdm import tqdm

from vae_mnist.common.mnist import NUM_CLASSES, PIXELS
from vae_mnist.common.quantities import TEST
from vae_mnist.data.splits import binarize
from vae_mnist.evaluation.memory import eval_rows
from vae_mnist.model.vae import VAE, kl_nats, reconstruction_nats

NATS = ("reconstruction", "kl", "neg_elbo", "neg_iwae")  # the per-image terms, in nats
ACTIVE_UNIT_THRESHOLD = 0.01  # Cov_x(E[z|x]) above this: the dimension is in use (Burda et al.)


LOG_2PI = 1.8378770664093453


def gaussian_log_density(z, mean, log_var):
    """log N(z; mean, exp(log_var)) summed over the last axis."""
    return -0.5 * ops.sum(LOG_2PI + log_var + ops.square(z - mean) * ops.exp(-log_var), axis=-1)


def log_importance_weights(log_px_z, z, z_mean, z_log_var):
    """log w = log p(x|z) + log p(z) - log q(z|x); z (k, B, latent), log_px_z (k, B)."""
    log_pz = gaussian_log_density(z, ops.zeros_like(z), ops.zeros_like(z))
    log_qz = gaussian_log_density(z, z_mean[None], z_log_var[None])
    return log_px_z + log_pz - log_qz


def iwae_bound(log_weights):
    """The importance-weighted bound (Burda et al. 2015) per image from log weights (k, B):
    log (1/k) sum_k w_k, through a stable log-sum-exp. k = 1 gives the ELBO estimate."""
    k = ops.shape(log_weights)[0]
    return ops.logsumexp(log_weights, axis=0) - ops.log(ops.cast(k, log_weights.dtype))


def per_image_terms(vae: VAE, images: np.ndarray, k: int, seed: int) -> dict[str, np.ndarray]:
    """reconstruction, kl, neg_elbo, neg_iwae (each (N,), nats), z_mean (N, latent), and mse
    (N,): the per-pixel squared error of the reconstruction at z_mean, the registered model's
    output, so that a served model can be checked against this stage's number."""
    batch = max(1, min(len(images), eval_rows(k) // k))  # about EVAL_ROWS decoder rows a call
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
    parts = []
    with progress_bar(n, f"test images, k = {k}") as progress:
        for i in range(0, len(padded), batch):
            parts.append(terms(tf.constant(padded[i : i + batch])))
            progress.update(min(batch, n - i))
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


class _LogLines:
    """tqdm's status lines for a stderr that is not a terminal: each on a line of its own,
    rather than carriage returns that a log shows as one growing line."""

    def write(self, text: str) -> None:
        if text := text.strip("\r\n "):
            sys.stderr.write(text + "\n")

    def flush(self) -> None:
        sys.stderr.flush()


def progress_bar(total: int, what: str) -> tqdm:
    """Images evaluated so far, on stderr: redrawn in place on a terminal; in a log (CI, a
    redirected `dvc repro`), a line every 30 s, so that k = 5000 (about 12 minutes) shows its
    pace without filling the log."""
    terminal = sys.stderr.isatty()
    return tqdm(
        total=total,
        desc=what,
        unit=" images",
        leave=not terminal,
        mininterval=0.5 if terminal else 30,
        file=sys.stderr if terminal else _LogLines(),
        ascii=not terminal,
    )


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
    return {TEST: overall, "per_digit": per_digit}


def per_digit_records(per_digit: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    """The per-digit means as one record per digit, the rows of a DVC plot."""
    return [{"digit": digit, **means} for digit, means in per_digit.items()]


def binarized_test_images(images: np.ndarray, mode: str, seed: int) -> tuple[np.ndarray, str]:
    """The test images evaluation uses (`mode`: data.binarize), and a line saying which they are
    (as papers do)."""
    if mode == "dynamic":
        drawn = binarize(images, np.random.default_rng(seed))
        return drawn, f"binarized: one Bernoulli draw per pixel, seed {seed}"
    if mode == "static":
        return images, "binarized in preprocess (static)"
    return images, "grey levels in [0, 1]"
