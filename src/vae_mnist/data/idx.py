"""A validating IDX reader, and the reader of one MNIST split from the raw files.

IDX is the format the files ship in: a big-endian header (magic number with the element type and
rank, then one uint32 per dimension) followed by the raw elements. Every check here exists because
a truncated download or a foreign file must fail with its name in the message, not as a reshape
error three stages later.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from vae_mnist.common.errors import DataError
from vae_mnist.common.mnist import IMAGE_SHAPE, NUM_CLASSES
from vae_mnist.data.mnist import MNIST_FILES, SPLIT_FILES

# IDX element-type codes and the numpy types they denote (big-endian on disk).
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def parse_idx(content: bytes, source: str) -> np.ndarray:
    """Decode IDX bytes; `source` names the file in every error."""
    if len(content) < 4:
        raise DataError(f"{source}: not an IDX file ({len(content)} bytes, no header)")
    zero, code, ndim = struct.unpack(">HBB", content[:4])
    if zero != 0 or code not in _IDX_DTYPES or ndim == 0:
        raise DataError(
            f"{source}: not an IDX file (magic number 0x{content[:4].hex()}; "
            "expected 0x0000 then a type code and a rank, e.g. 0x00000803 for images)"
        )
    header_size = 4 + 4 * ndim
    if len(content) < header_size:
        raise DataError(f"{source}: truncated IDX header ({len(content)} of {header_size} bytes)")
    shape = struct.unpack(f">{ndim}I", content[4:header_size])
    dtype = _IDX_DTYPES[code]
    # Exact: an int64 product wraps (4 sizes of 65536 make 2**64, i.e. 0) and a forged header
    # would pass the size check, then fail to reshape.
    expected = math.prod(shape) * dtype.itemsize
    found = len(content) - header_size
    if found != expected:
        state = "truncated" if found < expected else "has trailing bytes"
        raise DataError(
            f"{source}: {state}: header {shape} promises {expected} bytes of data, found {found}"
        )
    data = np.frombuffer(content, dtype=dtype, offset=header_size).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def read_gz(path: Path, max_size: int | None = None) -> bytes:
    """Decompress a .gz file, refusing to inflate more than `max_size` bytes."""
    try:
        with gzip.open(path, "rb") as stream:
            content = stream.read(-1 if max_size is None else max_size + 1)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{path}: not a readable gzip file ({error})") from None
    if max_size is not None and len(content) > max_size:
        raise DataError(f"{path}: decompresses to more than {max_size} bytes")
    return content


def read_split(raw_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28) and labels (N,) of one split, both uint8, checked to belong together."""
    images_path, labels_path = (raw_dir / name for name in SPLIT_FILES[split])
    images = parse_idx(read_gz(images_path, MNIST_FILES[images_path.name].size), str(images_path))
    labels = parse_idx(read_gz(labels_path, MNIST_FILES[labels_path.name].size), str(labels_path))
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
        raise DataError(
            f"{images_path}: holds {images.dtype} images of shape {images.shape}; "
            f"expected uint8 (N, {IMAGE_SHAPE[0]}, {IMAGE_SHAPE[1]})"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise DataError(
            f"{labels_path}: holds {labels.dtype} labels of shape {labels.shape}; "
            "expected uint8 (N,)"
        )
    if len(labels) != len(images):
        raise DataError(
            f"{labels_path}: {len(labels)} labels for {len(images)} images in {images_path.name}"
        )
    if labels.max(initial=0) >= NUM_CLASSES:
        raise DataError(f"{labels_path}: label {labels.max()} is not a digit 0-9")
    return images, labels
