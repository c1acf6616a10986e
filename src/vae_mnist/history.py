"""The per-epoch history file (reports/train_history.csv): written by train, plotted by DVC, read
back by evaluate for its training-curves figure. One row per epoch, columns HISTORY_COLUMNS."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path

Row = Mapping[str, float]


def to_csv(history: Sequence[Row]) -> str:
    """The history as CSV text: the epoch as an integer, every value to 9 significant digits."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(history[0]), lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: int(v) if k == "epoch" else f"{v:.9g}" for k, v in row.items()})
    return out.getvalue()


def read(path: Path) -> list[dict[str, float]]:
    """The rows of a history file, as numbers."""
    with path.open(newline="", encoding="utf-8") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
