"""The IDX reader, on tiny files the tests write with their own writer (conftest.encode_idx)."""

import gzip
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from vae_mnist.data.idx import parse_idx, read_gz, read_split
from vae_mnist.data.raw import MNIST_FILES, SPLIT_FILES
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
    write_split(tmp_path, np.zeros((2, 28, 28), np.uint8), np.array([3, 10], np.uint8))
    with pytest.raises(DataError, match="label 10 is not a digit"):
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


# Each bad input gets one clear error that names its file: the whole message is the contract.
def error_of(call, *args) -> str:
    with pytest.raises(DataError) as caught:
        call(*args)
    return str(caught.value)


def test_each_bad_header_has_its_own_whole_message() -> None:
    assert error_of(parse_idx, b"\0\0", "f") == "f: not an IDX file (2 bytes, no header)"
    assert error_of(parse_idx, b"\x12\x34\x56\x78\x9a", "f") == (
        "f: not an IDX file (magic number 0x12345678; expected 0x0000 then a type code and a "
        "rank, e.g. 0x00000803 for images)"
    )
    # four bytes are a whole magic number: what is missing is the sizes it announces
    assert error_of(parse_idx, b"\0\0\x08\x01", "f") == ("f: truncated IDX header (4 of 8 bytes)")
    assert error_of(parse_idx, b"\0\0\x08\x02" + bytes(5), "f") == (
        "f: truncated IDX header (9 of 12 bytes)"
    )
    assert error_of(parse_idx, encode_idx(np.zeros(4, np.uint8)) + b"\0", "f") == (
        "f: has trailing bytes: header (4,) promises 4 bytes of data, found 5"
    )


def test_an_empty_array_is_a_header_alone() -> None:
    decoded = parse_idx(encode_idx(np.zeros((0, 28, 28), np.uint8)), "f")
    assert decoded.shape == (0, 28, 28) and decoded.dtype == np.uint8


def test_read_gz_returns_the_whole_content_up_to_its_cap(tmp_path: Path) -> None:
    path = tmp_path / "f.gz"
    write_gz(path, bytes(range(100)))
    assert read_gz(path) == bytes(range(100))  # no cap
    assert read_gz(path, max_size=100) == bytes(range(100))  # exactly the cap
    assert error_of(read_gz, path, 99) == f"{path}: decompresses to more than 99 bytes"


def test_a_decompression_bomb_is_refused_without_inflating_it(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.gz"
    with gzip.open(bomb, "wb", compresslevel=1) as f:
        for _ in range(256):
            f.write(bytes(1 << 20))  # 256 MiB of zeros, about 250 KiB on disk
    tracemalloc.start()
    try:
        message = error_of(read_gz, bomb, 1 << 20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert message == f"{bomb}: decompresses to more than {1 << 20} bytes"
    assert peak < 16 << 20  # read no further than the cap


@pytest.mark.parametrize("which", [0, 1])
def test_a_split_file_larger_than_the_real_one_is_refused(tmp_path: Path, which: int) -> None:
    images, labels = synthetic_split(3, seed=0)
    write_split(tmp_path, images, labels)
    name = SPLIT_FILES["train"][which]
    write_gz(tmp_path / name, bytes(MNIST_FILES[name].size + 1))
    assert error_of(read_split, tmp_path, "train") == (
        f"{tmp_path / name}: decompresses to more than {MNIST_FILES[name].size} bytes"
    )


def test_an_empty_split_reads_as_empty_arrays(tmp_path: Path) -> None:
    write_split(tmp_path, np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.uint8))
    images, labels = read_split(tmp_path, "train")
    assert images.shape == (0, 28, 28) and labels.shape == (0,)


@pytest.mark.parametrize("dtype", [np.int16, np.float32])
def test_images_and_labels_of_another_type_are_refused_with_their_file(
    tmp_path: Path, dtype: type
) -> None:
    images_name, labels_name = SPLIT_FILES["train"]
    write_split(tmp_path, np.zeros((2, 28, 28), dtype), np.zeros(2, np.uint8))
    assert error_of(read_split, tmp_path, "train") == (
        f"{tmp_path / images_name}: holds {np.dtype(dtype)} images of shape (2, 28, 28); "
        "expected uint8 (N, 28, 28)"
    )
    write_split(tmp_path, np.zeros((2, 28, 28), np.uint8), np.zeros(2, dtype))
    assert error_of(read_split, tmp_path, "train") == (
        f"{tmp_path / labels_name}: holds {np.dtype(dtype)} labels of shape (2,); "
        "expected uint8 (N,)"
    )


def test_a_corrupt_file_is_named_in_its_error(tmp_path: Path) -> None:
    images, labels = synthetic_split(3, seed=0)
    write_split(tmp_path, images, labels)
    images_name, labels_name = SPLIT_FILES["train"]
    for name in (images_name, labels_name):
        good = (tmp_path / name).read_bytes()
        write_gz(tmp_path / name, b"\0\0\x08")
        assert error_of(read_split, tmp_path, "train") == (
            f"{tmp_path / name}: not an IDX file (3 bytes, no header)"
        )
        (tmp_path / name).write_bytes(good)
