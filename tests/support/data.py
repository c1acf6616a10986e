"""Synthetic MNIST: images, IDX files written independently of the project's reader, the
four raw files, a DVCLive history; and the real MNIST files where a test needs them."""

from __future__ import annotations

import gzip
import hashlib
import os
import signal
import struct
from pathlib import Path

import numpy as np
import pytest

from vae_mnist.data.mnist import SPLIT_FILES, MnistFile


def blurry_digits(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`n` images in [0, 1] and their labels: each digit lights its own band of rows, plus
    noise, so that a tiny VAE learns something in a few epochs."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 10).astype(np.uint8)
    images = rng.random((n, 28, 28)).astype(np.float32) * 0.2
    for i, digit in enumerate(labels):
        images[i, 2 * digit + 4 : 2 * digit + 8] += 0.7
    return np.clip(images, 0, 1), labels


def write_history(folder: Path, rows: list[tuple[float, ...]]) -> Path:
    """A DVCLive history written by the train stage's own callback: one row per epoch, values in
    HISTORY_COLUMNS order (the epoch first, counted from 1)."""
    from vae_mnist.common.quantities import EPOCH_NAMES
    from vae_mnist.training.callbacks import EpochLog

    log = EpochLog(folder)
    for epoch, *values in rows:
        log.on_epoch_end(int(epoch) - 1, dict(zip(EPOCH_NAMES, values, strict=True)))
    return folder


def foreground() -> None:
    """Ctrl-C's default action, as a shell gives its foreground job: a job started in the
    background (CI runners do that) inherits SIGINT ignored, and Python then keeps ignoring it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def write_gz(path: Path, content: bytes) -> Path:
    path.write_bytes(gzip.compress(content, mtime=0))
    return path


# IDX element types (http://yann.lecun.com/exdb/mnist/), written here independently of the
# project's reader so that the tests check it against the format, not against itself.
IDX_TYPE_CODES = {"u1": 0x08, "i1": 0x09, "i2": 0x0B, "i4": 0x0C, "f4": 0x0D, "f8": 0x0E}


def encode_idx(array: np.ndarray) -> bytes:
    """IDX bytes of an array: a big-endian header (0, type code, rank, sizes), then the data."""
    kind = f"{array.dtype.kind}{array.dtype.itemsize}"
    header = struct.pack(f">HBB{array.ndim}I", 0, IDX_TYPE_CODES[kind], array.ndim, *array.shape)
    return header + np.ascontiguousarray(array, dtype=array.dtype.newbyteorder(">")).tobytes()


def synthetic_split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`n` random 28x28 uint8 images with labels cycling through the ten digits."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    return images, labels


def write_raw(folder: Path, train: int = 200, test: int = 50) -> Path:
    """A data/raw look-alike: the four MNIST file names holding synthetic images."""
    folder.mkdir(parents=True)
    for split, n, seed in (("train", train, 1), ("test", test, 2)):
        images, labels = synthetic_split(n, seed)
        images_name, labels_name = SPLIT_FILES[split]
        write_gz(folder / images_name, encode_idx(images))
        write_gz(folder / labels_name, encode_idx(labels))
    return folder


def file_table(raw_dir: Path) -> dict[str, MnistFile]:
    """The download stage's table of MNIST files (name, sha256, size) for the synthetic files in
    raw_dir, to stand for the real table, which names MNIST's."""
    table = {}
    for path in sorted(raw_dir.iterdir()):
        content = gzip.decompress(path.read_bytes())
        table[path.name] = MnistFile(path.name, hashlib.sha256(content).hexdigest(), len(content))
    return table


def real_mnist() -> Path:
    """The folder of the real MNIST files (resolved); real-data tests skip without it."""
    mirror = os.environ.get("MNIST_MIRROR")
    if not mirror:
        pytest.skip("MNIST_MIRROR is not set: no real MNIST to run on (CI sets it)")
    return Path(mirror).resolve()
