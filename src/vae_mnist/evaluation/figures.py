"""The figures people look at, as PNG files: same model and data, same bytes.

Every figure, and the latent codes each one decodes, from arrays and a decoder passed in as a
function: no Keras, no MLflow. matplotlib's Agg renderer is deterministic; the only varying field
in a PNG it writes is the `Software` text (the matplotlib version), which is dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from statistics import NormalDist
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from vae_mnist.common.mnist import NUM_CLASSES
from vae_mnist.common.quantities import TRAIN, VAL, metric
from vae_mnist.evaluation.plane import LatentPlane

PNG_METADATA = {"Software": None}
DIGIT_COLOURS = plt.get_cmap("tab10")
PRIOR_SAMPLES = 100
INTERPOLATION_PAIRS = [(0, 6), (1, 7), (2, 5), (3, 8), (4, 9)]  # digits, start -> end
INTERPOLATION_STEPS = 10
Decoder = Callable[[np.ndarray], np.ndarray]  # latent codes (N, d) -> images (N, 28, 28)

# What each figure is drawn from besides the model, so that a comparison of two models knows when
# their figures line up pixel for pixel (the report, experiments/report): the same test images,
# the same latent plane (a 2-d latent: its own axes; wider, each model's own principal plane),
# the same draws from the prior, or nothing (a chart, whose axes are its own).
TEST_IMAGES, PLANE, PRIOR_DRAWS, CHART = "test images", "latent plane", "prior draws", "chart"
RECONSTRUCTIONS, LATENT_SPACE, MANIFOLD = "reconstructions.png", "latent_space.png", "manifold.png"
PRIOR, INTERPOLATIONS = "prior_samples.png", "interpolations.png"
CURVES, PER_DIGIT = "training_curves.png", "per_digit_neg_elbo.png"
DRAWN_FROM = {
    RECONSTRUCTIONS: TEST_IMAGES,
    LATENT_SPACE: PLANE,
    MANIFOLD: PLANE,
    PRIOR: PRIOR_DRAWS,
    INTERPOLATIONS: TEST_IMAGES,
    CURVES: CHART,
    PER_DIGIT: CHART,
}


def _save(fig: plt.Figure, path: Path) -> None:
    fig.savefig(path, dpi=100, metadata=PNG_METADATA)
    plt.close(fig)


def _tile(images: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """(rows*cols, 28, 28) -> one (rows*28, cols*28) picture."""
    h, w = images.shape[1:3]
    return (
        images[: rows * cols].reshape(rows, cols, h, w).swapaxes(1, 2).reshape(rows * h, cols * w)
    )


def first_of_each_digit(labels: np.ndarray) -> np.ndarray:
    """Indices of the first test image of each digit: a fixed, readable selection."""
    return np.array([int(np.flatnonzero(labels == d)[0]) for d in range(NUM_CLASSES)])


def reconstructions(originals: np.ndarray, decoded: np.ndarray, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(10, 2.4))
    ax.imshow(np.concatenate([_tile(originals, 1, 10), _tile(decoded, 1, 10)]), cmap="gray_r")
    ax.set_yticks([14, 42], ["original", "reconstruction"])
    ax.set_xticks([])
    ax.set_title("Test digits (first of each class) and their reconstructions")
    _save(fig, path)


def latent_projection(z_mean: np.ndarray) -> tuple[np.ndarray, str]:
    """2-D coordinates of latent means on their plane, and the plane's axes."""
    plane = LatentPlane.of(z_mean)
    return plane.project(z_mean), ("PCA of z_mean: " if plane.principal else "") + plane.axes


def latent_space(z_mean: np.ndarray, labels: np.ndarray, path: Path) -> None:
    points, axes = latent_projection(z_mean)
    fig, ax = plt.subplots(figsize=(7, 6))
    for digit in range(NUM_CLASSES):
        chosen = labels == digit
        ax.scatter(*points[chosen].T, s=2, color=DIGIT_COLOURS(digit), label=str(digit))
    ax.legend(title="digit", markerscale=5, loc="upper right", fontsize=8)
    first, second = axes.split(": ")[-1].split(", ")
    ax.set_xlabel(first)
    ax.set_ylabel(second)
    ax.set_title(f"Latent means of the test set ({'PCA projection' if 'PCA' in axes else '2-d'})")
    _save(fig, path)


def manifold_codes(z_mean: np.ndarray, n: int = 20) -> np.ndarray:
    """(n*n, latent) codes on a grid spaced by normal quantiles, in the plane the figure shows
    (in standard deviations of the latent means along each axis when that is a PCA plane)."""
    quantiles = np.array([NormalDist().inv_cdf(p) for p in np.linspace(0.05, 0.95, n)])
    grid = np.stack(np.meshgrid(quantiles, quantiles[::-1]), axis=-1).reshape(-1, 2)
    plane = LatentPlane.of(z_mean)
    return plane.lift(grid * plane.scale if plane.principal else grid)


def manifold(decoded: np.ndarray, latent_dim: int, path: Path) -> None:
    n = int(np.sqrt(len(decoded)))
    fig, ax = plt.subplots(figsize=(8, 8))
    ax.imshow(_tile(decoded, n, n), cmap="gray_r")
    ax.set_axis_off()
    plane = "latent plane" if latent_dim == 2 else "plane of the top two principal directions"
    ax.set_title(f"Decoder outputs over the {plane} (normal quantiles 5%-95%)")
    _save(fig, path)


def samples(decoded: np.ndarray, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 7))
    ax.imshow(_tile(decoded, 10, 10), cmap="gray_r")
    ax.set_axis_off()
    ax.set_title("Samples from the prior z ~ N(0, I) (Bernoulli means)")
    _save(fig, path)


def interpolations(decoded: np.ndarray, pairs: list[tuple[int, int]], path: Path) -> None:
    steps = len(decoded) // len(pairs)
    fig, ax = plt.subplots(figsize=(10, 1.1 * len(pairs) + 0.6))
    ax.imshow(_tile(decoded, len(pairs), steps), cmap="gray_r")
    ax.set_yticks([14 + 28 * i for i in range(len(pairs))], [f"{a} → {b}" for a, b in pairs])
    ax.set_xticks([])
    ax.set_title("Linear interpolation between the latent means of two test digits")
    _save(fig, path)


def training_curves(rows: Sequence[Mapping[str, float]], path: Path) -> None:
    epochs = [int(r["epoch"]) for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for key, label in (
        (metric(TRAIN, "loss"), "training loss"),
        (metric(VAL, "neg_elbo"), "validation -ELBO"),
    ):
        left.plot(epochs, [float(r[key]) for r in rows], marker="o", label=label)
    left.set(xlabel="epoch", ylabel="nats per image", title="Loss")
    left.legend()
    for key in (metric(TRAIN, "kl"), metric(VAL, "kl")):
        right.plot(epochs, [float(r[key]) for r in rows], marker="o", label=key)
    right.set(xlabel="epoch", ylabel="nats per image", title="KL term")
    right.legend()
    fig.tight_layout()
    _save(fig, path)


def per_digit_elbo(per_digit: dict[str, dict[str, float]], path: Path) -> None:
    digits = sorted(per_digit, key=int)
    fig, ax = plt.subplots(figsize=(8, 4))
    values = [per_digit[d]["neg_elbo"] for d in digits]
    ax.bar(digits, values, color=[DIGIT_COLOURS(int(d)) for d in digits])
    for x, v in zip(digits, values, strict=True):
        ax.text(x, v, f"{v:.0f}", ha="center", va="bottom", fontsize=8)
    ax.set(xlabel="digit", ylabel="-ELBO (nats per image)", title="Test -ELBO per digit")
    _save(fig, path)


def prior_codes(latent_dim: int, seed: int) -> np.ndarray:
    """Draws from the prior N(0, I), seeded."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((PRIOR_SAMPLES, latent_dim)).astype(np.float32)


def interpolation_codes(z_mean: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """Straight lines between the latent means of the chosen images of each pair of digits."""
    steps = np.linspace(0, 1, INTERPOLATION_STEPS, dtype=np.float32)[:, None]
    return np.concatenate(
        [
            (1 - steps) * z_mean[chosen[a]] + steps * z_mean[chosen[b]]
            for a, b in INTERPOLATION_PAIRS
        ]
    )


def render_all(
    decode: Decoder,
    images: np.ndarray,
    labels: np.ndarray,
    reconstructed: np.ndarray,
    z_mean: np.ndarray,
    per_digit: Mapping[str, Mapping[str, Any]],
    history: Sequence[Mapping[str, float]],
    folder: Path,
    seed: int,
) -> None:
    """Every figure of the evaluate stage into `folder`. `reconstructed` holds the reconstructions
    of `images[first_of_each_digit(labels)]`, in that order."""
    chosen = first_of_each_digit(labels)
    reconstructions(images[chosen], reconstructed, folder / RECONSTRUCTIONS)
    latent_space(z_mean, labels, folder / LATENT_SPACE)
    manifold(decode(manifold_codes(z_mean)), z_mean.shape[1], folder / MANIFOLD)
    samples(decode(prior_codes(z_mean.shape[1], seed)), folder / PRIOR)
    interpolations(
        decode(interpolation_codes(z_mean, chosen)), INTERPOLATION_PAIRS, folder / INTERPOLATIONS
    )
    training_curves(history, folder / CURVES)
    per_digit_elbo(per_digit, folder / PER_DIGIT)
