"""The processed dataset on disk: one .npy pair per split, read back without pickle, and
stats.json, which records each array file's sha256.

Plain .npy rather than .npz: np.savez stamps the current time into its zip entries, so the same
arrays would hash differently on every run and DVC would see a change that is not there.

Every read checks the file against its recorded sha256: a truncated .npy fails to parse anyway,
but a changed byte in the data would load as a different dataset, and train on it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from vae_mnist.common.errors import RESTORE_HINT, DataError
from vae_mnist.common.outputs import file_sha256, json_text

STATS_FILE = "stats.json"
FILES = "files"  # stats.json's record of each array file's sha256


def split_files(folder: Path, split: str) -> tuple[Path, Path]:
    return folder / f"{split}_images.npy", folder / f"{split}_labels.npy"


def save_split(folder: Path, split: str, images: np.ndarray, labels: np.ndarray) -> None:
    for path, array in zip(split_files(folder, split), (images, labels), strict=True):
        save_array(path, array)


def save_array(path: Path, array: np.ndarray) -> None:
    """np.save through Python's write(), so that a full disk reports ENOSPC with the file's
    name: numpy's own fast path reports a short write as "141120 requested and 65504 written"."""
    with path.open("wb") as file:
        try:
            np.save(_Writer(file.write), array, allow_pickle=False)
        except OSError as error:
            raise OSError(error.errno, error.strerror, str(path)) from None


class _Writer:
    """A file-like object numpy cannot take for a real file (it writes in 16 MiB chunks)."""

    def __init__(self, write: Callable[[bytes], object]) -> None:
        self.write = write


def save_dataset(
    folder: Path, splits: dict[str, tuple[np.ndarray, np.ndarray]], stats: dict[str, Any]
) -> dict[str, Any]:
    """Every split and stats.json, with the array files' sha256 added; the stats as written."""
    for split, (images, labels) in splits.items():
        save_split(folder, split, images, labels)
    files = {
        path.name: file_sha256(path) for split in splits for path in split_files(folder, split)
    }
    recorded = {**stats, FILES: files}
    (folder / STATS_FILE).write_text(json_text(recorded), encoding="utf-8")
    return recorded


def recorded_sha256(folder: Path) -> dict[str, str]:
    """The array files' sha256 as preprocess wrote them into stats.json."""
    stats = folder / STATS_FILE
    try:
        return dict(json.loads(stats.read_text(encoding="utf-8"))[FILES])
    except FileNotFoundError:
        raise DataError(f"{stats}: no such file (run `dvc repro preprocess`)") from None
    except (ValueError, KeyError, TypeError) as error:
        raise DataError(
            f"{stats}: no record of the array files' sha256 ({type(error).__name__}: {error}); "
            "run `dvc repro preprocess`"
        ) from None


def verify(path: Path, recorded: dict[str, str]) -> None:
    """Refuse a file whose content is not what preprocess wrote."""
    try:
        actual = file_sha256(path)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file (run `dvc repro preprocess`)") from None
    if actual != recorded.get(path.name):
        raise DataError(
            f"{path}: content changed since preprocess wrote it (sha256 {actual[:12]}, "
            f"stats.json records {str(recorded.get(path.name))[:12]}); {RESTORE_HINT}"
        )


def load_split(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images float32 (N, 28, 28) in [0, 1] and labels uint8 (N,), checked against stats.json."""
    images_path, labels_path = split_files(folder, split)
    recorded = recorded_sha256(folder)
    for path in (images_path, labels_path):
        verify(path, recorded)
    try:
        images = np.load(images_path, allow_pickle=False)
        labels = np.load(labels_path, allow_pickle=False)
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
