"""Tests of data/idx.py, the IDX reader: tiny files first, then properties over any bytes.

The files are written by the tests' own writer (conftest.encode_idx), from the format rather
than from the reader."""

from __future__ import annotations

import gzip
import struct
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.data import IDX_TYPE_CODES, encode_idx, synthetic_split, write_gz
from vae_mnist.common.errors import DataError
from vae_mnist.data.idx import parse_idx, read_gz, read_split
from vae_mnist.data.mnist import MNIST_FILES, SPLIT_FILES


def write_split(folder: Path, images: np.ndarray, labels: np.ndarray) -> None:
    images_name, labels_name = SPLIT_FILES["train"]
    write_gz(folder / images_name, encode_idx(images))
    write_gz(folder / labels_name, encode_idx(labels))


# Each bad input gets one clear error that names its file: the whole message is the contract.
def error_of(call, *args) -> str:
    with pytest.raises(DataError) as caught:
        call(*args)
    return str(caught.value)


# Reproducible in CI: the same examples every run, nothing read from or written to a database.
PROPERTY = settings(
    max_examples=150,
    derandomize=True,
    database=None,
    deadline=5_000,  # ms: a hang shows up as a failure, not as a stuck run
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


SLACK = 64 << 10  # bytes any call may allocate whatever its input: struct, messages, numpy views


DTYPES = [np.dtype(kind) for kind in IDX_TYPE_CODES]


def outcome(call: Callable[..., Any], *args: Any, input_size: int) -> Any:
    """The call's result, or its DataError; any other exception fails the test. Peak allocation
    is checked against the input: one copy of the data, plus a constant."""
    tracemalloc.start()
    try:
        try:
            result: Any = call(*args)
        except DataError as error:
            result = error
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= 2 * input_size + SLACK, f"allocated {peak} bytes for {input_size} of input"
    return result


def arrays(dtype: np.dtype | None = None) -> st.SearchStrategy[np.ndarray]:
    """Small arrays of rank 1 to 3, any IDX element type (or `dtype`), any values."""

    @st.composite
    def draw_array(draw: st.DrawFn) -> np.ndarray:
        kind = dtype if dtype is not None else draw(st.sampled_from(DTYPES))
        shape = draw(st.lists(st.integers(0, 5), min_size=1, max_size=3))
        size = int(np.prod(shape)) * kind.itemsize
        raw = draw(st.binary(min_size=size, max_size=size))
        return np.frombuffer(raw, dtype=kind).reshape(shape)

    return draw_array()


@st.composite
def damaged(draw: st.DrawFn, content: bytes) -> bytes:
    """`content` with one to three bytes flipped, inserted or deleted, a header size replaced
    (powers of two included: sizes whose product overflows), or the end cut off."""
    data = bytearray(content)
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "size"]))
        at = draw(st.integers(0, len(data)))
        if action == "flip" and at < len(data):
            data[at] ^= draw(st.integers(1, 255))
        elif action == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif action == "delete":
            del data[at : at + draw(st.integers(1, 8))]
        elif action == "truncate":
            del data[at:]
        elif action == "size" and len(data) >= 8:
            dim = draw(st.integers(0, max(0, min(data[3], (len(data) - 8) // 4))))
            size = draw(st.one_of(st.integers(0, 2**32 - 1), st.sampled_from(POWERS_OF_TWO)))
            data[4 + 4 * dim : 8 + 4 * dim] = struct.pack(">I", size)
    return bytes(data)


POWERS_OF_TWO = [2**n for n in range(32)]


def check_parse(content: bytes) -> np.ndarray | DataError:
    result = outcome(parse_idx, content, "f", input_size=len(content))
    if isinstance(result, DataError):
        assert str(result).startswith("f: ")
    else:  # a parse is exactly what the bytes say: written back, the same bytes
        assert encode_idx(result) == content
        assert result.dtype.isnative
    return result


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


def test_each_bad_header_has_its_own_whole_message() -> None:
    assert error_of(parse_idx, b"\0\0", "f") == "f: not an IDX file (2 bytes, no header)"
    assert error_of(parse_idx, b"\x12\x34\x56\x78\x9a", "f") == (
        "f: not an IDX file (magic number 0x12345678; expected 0x0000 then a type code and a "
        "rank, e.g. 0x00000803 for images)"
    )
    # rank 0 (one bare element, no sizes) is no array of images or labels, refused as a header
    assert error_of(parse_idx, b"\0\0\x08\x00\x07", "f") == (
        "f: not an IDX file (magic number 0x00000800; expected 0x0000 then a type code and a "
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


@pytest.mark.parametrize(("rank", "header_size"), [(0x80, 516), (0xFF, 1024)])
def test_a_rank_above_127_is_a_truncated_header_with_its_sizes(rank: int, header_size: int) -> None:
    """An IDX header's rank byte is unsigned: a rank above 127 announces a long header, not a
    negative one."""
    content = b"\0\0\x08" + bytes([rank])
    with pytest.raises(DataError) as caught:
        parse_idx(content, "f")
    assert str(caught.value) == f"f: truncated IDX header (4 of {header_size} bytes)"


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


@PROPERTY
@given(array=arrays())
def test_a_written_array_reads_back_equal(array: np.ndarray) -> None:
    result = check_parse(encode_idx(array))
    assert isinstance(result, np.ndarray)
    assert result.dtype == array.dtype and result.shape == array.shape
    np.testing.assert_array_equal(result.view(np.uint8), array.view(np.uint8))  # NaNs bit for bit


@PROPERTY
@given(data=st.data(), array=arrays(np.dtype(np.uint8)))
def test_a_damaged_file_reads_as_its_bytes_say_or_is_refused(
    data: st.DataObject, array: np.ndarray
) -> None:
    check_parse(data.draw(damaged(encode_idx(array))))


@PROPERTY
@given(content=st.binary(max_size=64))
def test_arbitrary_bytes_read_as_they_say_or_are_refused(content: bytes) -> None:
    check_parse(content)


@PROPERTY
@given(
    code=st.sampled_from(list(IDX_TYPE_CODES.values())),
    sizes=st.lists(
        st.one_of(st.sampled_from(POWERS_OF_TWO), st.integers(0, 2**32 - 1)), max_size=6
    ),
    tail=st.binary(max_size=32),
)
def test_a_header_promising_more_than_the_file_holds_is_refused_unallocated(
    code: int, sizes: list[int], tail: bytes
) -> None:
    content = struct.pack(f">HBB{len(sizes)}I", 0, code, len(sizes), *sizes) + tail
    check_parse(content)


@pytest.mark.parametrize(
    "sizes",
    [
        (2**31,),  # 2**31 items in a 20-byte file
        (2**31, 2**31, 4),  # 2**64 bytes: an int64 product wraps to 0
        (65536, 65536, 65536, 65536),
        (2**32 - 1,) * 8,
    ],
)
def test_sizes_whose_product_overflows_are_refused(sizes: tuple[int, ...]) -> None:
    for tail in (b"", bytes(12)):
        content = struct.pack(f">HBB{len(sizes)}I", 0, 0x08, len(sizes), *sizes) + tail
        result = check_parse(content)
        assert isinstance(result, DataError) and "promises" in str(result)


@PROPERTY
@given(content=st.binary(max_size=256))
def test_arbitrary_bytes_as_a_gz_file_decompress_or_are_refused(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "f.gz"
    path.write_bytes(content)
    cap = 1 << 16  # read_gz's own bound: it never inflates more than its cap
    result = outcome(read_gz, path, cap, input_size=cap)
    if isinstance(result, DataError):
        assert str(result).startswith(f"{path}: ")
    else:
        assert gzip.decompress(content) == result


@PROPERTY
@given(data=st.data(), array=arrays(np.dtype(np.uint8)))
def test_a_damaged_gz_file_decompresses_or_is_refused(
    tmp_path: Path, data: st.DataObject, array: np.ndarray
) -> None:
    path = tmp_path / "f.gz"
    path.write_bytes(data.draw(damaged(gzip.compress(encode_idx(array), mtime=0))))
    result = outcome(read_gz, path, 1 << 16, input_size=1 << 16)
    assert isinstance(result, bytes | DataError)


@PROPERTY
@given(
    data=st.data(),
    n=st.integers(0, 3),
    pixels=st.binary(min_size=3 * 784, max_size=3 * 784),
    digits=st.binary(min_size=3, max_size=3),
)
def test_a_damaged_split_reads_whole_or_is_refused(
    tmp_path: Path, data: st.DataObject, n: int, pixels: bytes, digits: bytes
) -> None:
    images = np.frombuffer(pixels[: n * 784], np.uint8).reshape(n, 28, 28)
    labels = np.frombuffer(digits[:n], np.uint8) % 11  # now and then a label that is no digit
    written = []
    for name, array in zip(SPLIT_FILES["train"], (images, labels), strict=True):
        content = encode_idx(array)
        if data.draw(st.booleans(), label=f"damage {name}"):
            content = data.draw(damaged(content), label=name)
        (tmp_path / name).write_bytes(gzip.compress(content, mtime=0))
        written.append(content)
    # read_gz reads up to each file's real size in one buffer: that, not the input, bounds it
    cap = sum(MNIST_FILES[name].size for name in SPLIT_FILES["train"])
    result = outcome(read_split, tmp_path, "train", input_size=cap)
    if isinstance(result, DataError):
        assert str(result).startswith(str(tmp_path))
    else:  # both files read as their bytes say, and make a split
        got_images, got_labels = result
        assert [encode_idx(got_images), encode_idx(got_labels)] == written
        assert got_images.shape[1:] == (28, 28) and len(got_labels) == len(got_images)
        assert got_labels.max(initial=0) <= 9
