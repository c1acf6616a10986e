"""Raw MNIST arrays -> scaled float32 arrays for train, validation and test, and their stats.

Arrays in, arrays out: stages/preprocess.py reads the raw files, writes these and logs them.

The validation set is taken from the 60k training images, stratified by digit so that every
split has MNIST's class balance; the 10k test images are never touched until evaluation.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vae_mnist.common.config import Config
from vae_mnist.common.errors import ConfigError
from vae_mnist.common.mnist import NUM_CLASSES
from vae_mnist.common.quantities import TEST, TRAIN, VAL
from vae_mnist.data.arrays import array_digest

Split = tuple[np.ndarray, np.ndarray]  # (images, labels)

SPLIT_METHOD = "stratified by digit"


def binarize(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """float32 0/1 images: a pixel is on when its uniform float32 draw is below its intensity,
    so that P(on) is the intensity exactly (a draw equal to it is off)."""
    return (rng.random(images.shape, dtype=np.float32) < images).astype(np.float32)


def stratified_split(
    labels: np.ndarray, val_size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, val) indices; each digit gives val_size * its share, largest remainders
    rounding up so the sizes add up exactly."""
    counts = np.bincount(labels, minlength=NUM_CLASSES)
    quota = counts * val_size / len(labels)
    take = np.floor(quota).astype(np.int64)
    shortfall = val_size - int(take.sum())
    take[np.argsort(-(quota - take), kind="stable")[:shortfall]] += 1
    val = np.concatenate(
        [rng.permutation(np.flatnonzero(labels == digit))[:n] for digit, n in enumerate(take)]
    )
    val.sort()
    train = np.setdiff1d(np.arange(len(labels)), val, assume_unique=True)
    return train, val


def scale(images: np.ndarray) -> np.ndarray:
    """uint8 0..255 -> float32 0..1."""
    return images.astype(np.float32) / np.float32(255)


def split_stats(images: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    return {
        "count": len(labels),
        "digest": array_digest(images, labels),
        "digit_counts": {
            str(d): int(n) for d, n in enumerate(np.bincount(labels, minlength=NUM_CLASSES))
        },
        "pixel_mean": round(float(images.mean(dtype=np.float64)), 6),
    }


def build_splits(config: Config, train: Split, test: Split) -> dict[str, Split]:
    """All three splits as (float32 images, uint8 labels) from the raw uint8 training and test
    sets, deterministic in `config.seed`."""
    split_rng, binarize_rng = np.random.default_rng(config.seed).spawn(2)
    (train_images, train_labels), (test_images, test_labels) = train, test
    if config.data.val_size >= len(train_labels):
        raise ConfigError(
            f"data.val_size = {config.data.val_size} leaves no training images "
            f"(the training set has {len(train_labels)})"
        )
    train_idx, val_idx = stratified_split(train_labels, config.data.val_size, split_rng)
    splits = {
        TRAIN: (scale(train_images[train_idx]), train_labels[train_idx]),
        VAL: (scale(train_images[val_idx]), train_labels[val_idx]),
        TEST: (scale(test_images), test_labels),
    }
    if config.data.binarize == "static":
        splits = {name: (binarize(x, binarize_rng), y) for name, (x, y) in splits.items()}
    return splits


def stats(config: Config, splits: dict[str, Split]) -> dict[str, Any]:
    """What stats.json records: how the splits were made, and each split's counts and digest."""
    return {
        "binarize": config.data.binarize,
        "split": {"method": SPLIT_METHOD, "seed": config.seed, "val_size": config.data.val_size},
        "splits": {name: split_stats(x, y) for name, (x, y) in splits.items()},
    }
