"""The IDX reader under arbitrary and damaged bytes: it returns exactly what the bytes say or
raises DataError; never another exception, and never allocates more than the input justifies."""

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

from vae_mnist.data.idx import parse_idx, read_gz, read_split
from vae_mnist.data.raw import MNIST_FILES, SPLIT_FILES
from vae_mnist.errors import DataError

from .conftest import IDX_TYPE_CODES, encode_idx

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
