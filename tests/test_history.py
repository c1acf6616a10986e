"""The history file: what train writes is what evaluate reads back, with the documented columns."""

from __future__ import annotations

from pathlib import Path

import pytest

from vae_mnist import history
from vae_mnist.quantities import HISTORY_COLUMNS


def test_rows_round_trip_to_nine_significant_digits(tmp_path: Path) -> None:
    rows = [
        {name: 1.0 + epoch if name == "epoch" else 100 / (epoch + 3) for name in HISTORY_COLUMNS}
        for epoch in range(3)
    ]
    text = history.to_csv(rows)
    assert "\r" not in text and text.endswith("\n")  # the same bytes on every platform
    assert text.splitlines()[0] == ",".join(HISTORY_COLUMNS)
    assert text.splitlines()[1].startswith("1,33.3333333,")  # the epoch an integer, 9 digits
    (tmp_path / "h.csv").write_text(text)
    back = history.read(tmp_path / "h.csv")
    assert [list(row) for row in back] == [list(HISTORY_COLUMNS)] * 3
    for original, read in zip(rows, back, strict=True):
        assert read == pytest.approx(original, rel=1e-8)


def test_a_one_epoch_history_has_its_header_and_one_row() -> None:
    row = dict(zip(HISTORY_COLUMNS, (1, 2.5, 2, 0.5, 3, 2, 1, 0.001, 1), strict=True))
    assert history.to_csv([row]) == ",".join(HISTORY_COLUMNS) + "\n1,2.5,2,0.5,3,2,1,0.001,1\n"
