"""An IDX header's rank byte is unsigned: a rank above 127 announces a long header, not a
negative one."""

import pytest

from vae_mnist.data.idx import parse_idx
from vae_mnist.errors import DataError


@pytest.mark.parametrize(("rank", "header_size"), [(0x80, 516), (0xFF, 1024)])
def test_a_rank_above_127_is_a_truncated_header_with_its_sizes(rank: int, header_size: int) -> None:
    content = b"\0\0\x08" + bytes([rank])
    with pytest.raises(DataError) as caught:
        parse_idx(content, "f")
    assert str(caught.value) == f"f: truncated IDX header (4 of {header_size} bytes)"
