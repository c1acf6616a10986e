"""The processed dataset on disk: one .npy pair per split, read back without pickle.

Plain .npy rather than .npz: np.savez stamps the current time into its zip entries, so the same
arrays would hash differently on every run and DVC would see a change that is not there.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from vae_mnist.errors import DataError

SPLITS = ("train", "val", "test")
STATS_FILE = "stats.json"


def split_files(folder: Path, split: str) -> tuple[Path, Path]:
    return folder / f"{split}_images.npy", folder / f"{split}_labels.npy"


def save_split(folder: Path, split: str, images: np.ndarray, labels: np.ndarray) -> None:
    images_path, labels_path = split_files(folder, split)
    np.save(images_path, images, allow_pickle=False)
    np.save(labels_path, labels, allow_pickle=False)


def load_split(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images float32 (N, 28, 28) in [0, 1] and labels uint8 (N,)."""
    images_path, labels_path = split_files(folder, split)
    try:
        images = np.load(images_path, allow_pickle=False)
        labels = np.load(labels_path, allow_pickle=False)
    except FileNotFoundError as error:
        raise DataError(f"{error.filename}: no such file (run `dvc repro preprocess`)") from None
    except ValueError as error:
        raise DataError(f"{images_path.parent}: unreadable {split} arrays ({error})") from None
    if images.dtype != np.float32 or len(images) != len(labels):
        raise DataError(f"{images_path.parent}: {split} arrays are not a preprocess output")
    return images, labels


def array_digest(*arrays: np.ndarray) -> str:
    """A short content digest of arrays (dtype, shape and values), used as MLflow dataset digest.

    16 hex digits fit MLflow's dataset-digest column and still name the content uniquely.
    """
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(np.ascontiguousarray(array).data)
    return digest.hexdigest()[:16]
