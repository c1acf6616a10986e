"""The IDX reader, on tiny files the tests write with their own writer (conftest.encode_idx)."""

from pathlib import Path

import numpy as np
import pytest

from vae_mnist.data.idx import parse_idx, read_split
from vae_mnist.data.raw import SPLIT_FILES
from vae_mnist.errors import DataError

from .conftest import encode_idx, synthetic_split, write_gz


@pytest.mark.parametrize(
    "array",
    [
        np.arange(24, dtype=np.uint8).reshape(2, 3, 4),
        np.array([7, 0, 9], dtype=np.uint8),
        np.linspace(-1, 1, 6, dtype=np.float32).reshape(3, 2),
        np.array([[-5, 300]], dtype=np.int16),
    ],
)
def test_round_trip(array: np.ndarray) -> None:
    decoded = parse_idx(encode_idx(array), "mem")
    assert decoded.dtype == array.dtype
    np.testing.assert_array_equal(decoded, array)


def test_header_is_mnist_big_endian() -> None:
    content = encode_idx(np.zeros((60_000, 28, 28), dtype=np.uint8))
    assert content[:16] == bytes.fromhex("000008030000ea600000001c0000001c")


def test_truncated_file_is_named_with_sizes() -> None:
    content = encode_idx(np.zeros((3, 28, 28), dtype=np.uint8))
    with pytest.raises(DataError, match=r"x\.idx: truncated: header \(3, 28, 28\) promises 2352"):
        parse_idx(content[:-10], "x.idx")


def test_trailing_bytes_are_rejected() -> None:
    with pytest.raises(DataError, match="trailing bytes"):
        parse_idx(encode_idx(np.zeros(4, dtype=np.uint8)) + b"\0", "x.idx")


@pytest.mark.parametrize(
    "content", [b"PK\x03\x04 a zip file, not IDX", b"\x00\x00\x07\x03" + bytes(12), b"\0\0"]
)
def test_foreign_file_is_rejected(content: bytes) -> None:
    with pytest.raises(DataError, match="not an IDX file"):
        parse_idx(content, "foreign.bin")


def write_split(folder: Path, images: np.ndarray, labels: np.ndarray) -> None:
    images_name, labels_name = SPLIT_FILES["train"]
    write_gz(folder / images_name, encode_idx(images))
    write_gz(folder / labels_name, encode_idx(labels))


def test_read_split(tmp_path: Path) -> None:
    images, labels = synthetic_split(30, seed=0)
    write_split(tmp_path, images, labels)
    got_images, got_labels = read_split(tmp_path, "train")
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)


def test_wrong_image_dimensions(tmp_path: Path) -> None:
    write_split(tmp_path, np.zeros((5, 32, 32), np.uint8), np.zeros(5, np.uint8))
    with pytest.raises(DataError, match=r"shape \(5, 32, 32\); expected uint8 \(N, 28, 28\)"):
        read_split(tmp_path, "train")


def test_label_count_mismatch(tmp_path: Path) -> None:
    write_split(tmp_path, np.zeros((5, 28, 28), np.uint8), np.zeros(4, np.uint8))
    with pytest.raises(DataError, match="4 labels for 5 images"):
        read_split(tmp_path, "train")


def test_label_out_of_range(tmp_path: Path) -> None:
    write_split(tmp_path, np.zeros((2, 28, 28), np.uint8), np.array([3, 12], np.uint8))
    with pytest.raises(DataError, match="label 12 is not a digit"):
        read_split(tmp_path, "train")


def test_not_gzip(tmp_path: Path) -> None:
    images, labels = synthetic_split(3, seed=0)
    write_split(tmp_path, images, labels)
    (tmp_path / SPLIT_FILES["train"][0]).write_bytes(encode_idx(images))  # IDX, but not gzipped
    with pytest.raises(DataError, match="not a readable gzip file"):
        read_split(tmp_path, "train")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        read_split(tmp_path, "test")
