"""The preprocess stage: raw IDX files -> scaled float32 arrays for train, validation and test.

The validation set is taken from the 60k training images, stratified by digit so that every
split has MNIST's class balance; the 10k test images are never touched until evaluation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import numpy as np

from vae_mnist.config import Config
from vae_mnist.data.arrays import MLFLOW_CONTEXT, STATS_FILE, dataset_name, save_split, split_files
from vae_mnist.data.mnist import NUM_CLASSES, array_digest, read_split
from vae_mnist.errors import ConfigError
from vae_mnist.outputs import atomic_directory, json_text
from vae_mnist.tracking import log_dataset, stage_run

SPLIT_METHOD = "stratified by digit"


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


def binarize(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One Bernoulli draw per pixel with the pixel's intensity as probability."""
    return (rng.random(images.shape, dtype=np.float32) < images).astype(np.float32)


def split_stats(images: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    return {
        "count": len(labels),
        "digest": array_digest(images, labels),
        "digit_counts": {
            str(d): int(n) for d, n in enumerate(np.bincount(labels, minlength=NUM_CLASSES))
        },
        "pixel_mean": round(float(images.mean(dtype=np.float64)), 6),
    }


def build_splits(config: Config, raw_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """All three splits as (float32 images, uint8 labels), deterministic in `config.seed`."""
    split_rng, binarize_rng = np.random.default_rng(config.seed).spawn(2)
    train_images, train_labels = read_split(raw_dir, "train")
    test_images, test_labels = read_split(raw_dir, "test")
    if config.data.val_size >= len(train_labels):
        raise ConfigError(
            f"data.val_size = {config.data.val_size} leaves no training images "
            f"(the training set has {len(train_labels)})"
        )
    train_idx, val_idx = stratified_split(train_labels, config.data.val_size, split_rng)
    splits = {
        "train": (scale(train_images[train_idx]), train_labels[train_idx]),
        "val": (scale(train_images[val_idx]), train_labels[val_idx]),
        "test": (scale(test_images), test_labels),
    }
    if config.data.binarize == "static":
        splits = {name: (binarize(x, binarize_rng), y) for name, (x, y) in splits.items()}
    return splits


def preprocess_mnist(config: Config, raw_dir: Path, out_dir: Path) -> dict[str, Any]:
    """The `preprocess` stage; returns the stats it wrote to `out_dir/stats.json`."""
    params = {key: config.flat()[key] for key in ("seed", "data.val_size", "data.binarize")}
    with stage_run("preprocess", config.mlflow.experiment_name, params):
        splits = build_splits(config, raw_dir)
        stats = {
            "binarize": config.data.binarize,
            "split": {
                "method": SPLIT_METHOD,
                "seed": config.seed,
                "val_size": config.data.val_size,
            },
            "splits": {name: split_stats(x, y) for name, (x, y) in splits.items()},
        }
        with atomic_directory(out_dir) as staging:
            for name, (images, labels) in splits.items():
                save_split(staging, name, images, labels)
            (staging / STATS_FILE).write_text(json_text(stats), encoding="utf-8")
        for name, (images, labels) in splits.items():
            info = stats["splits"][name]
            mlflow.log_metrics(
                {f"{name}/count": info["count"], f"{name}/pixel_mean": info["pixel_mean"]}
            )
            log_dataset(
                images,
                labels,
                source=split_files(out_dir, name)[0],
                name=dataset_name(name),
                digest=info["digest"],
                context=MLFLOW_CONTEXT[name],
            )
        mlflow.log_dict(stats, STATS_FILE)
    return stats
