"""The per-epoch history (reports/training): where each quantity's file is and how to read them
back. DVCLive writes it while the model trains (training.EpochLog), DVC plots it, evaluate draws
its training-curves figure from it and the comparison report overlays two of them.

Epoch n is step n, as in MLflow (tracking/models.py), so a curve has the same x in `dvc plots` and
in the MLflow UI. DVCLive leaves dvc.yaml alone (the plots are declared there by hand), saves no
experiment of its own (`dvc exp run` does that) and writes no timestamps, so a rerun writes the
same bytes.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from vae_mnist.common.quantities import EPOCH_NAMES

EPOCH = "epoch"
STEP = "step"  # DVCLive's name for the x of every metric file


def metric_file(folder: Path, name: str) -> Path:
    """Where DVCLive keeps the values of one quantity (`val/neg_elbo` -> .../val/neg_elbo.tsv)."""
    return folder / "plots" / "metrics" / f"{name}.tsv"


def parse(text: str, name: str) -> list[tuple[int, float]]:
    """One quantity's file, as written by DVCLive, as (epoch, value) pairs."""
    records = csv.DictReader(io.StringIO(text, newline=""), delimiter="\t")
    return [(int(r[STEP]), float(r[Path(name).name])) for r in records]


def read(folder: Path) -> list[dict[str, float]]:
    """The history as rows, one per epoch: `epoch` and each quantity DVCLive logged."""
    rows: dict[int, dict[str, float]] = {}
    for name in EPOCH_NAMES.values():
        path = metric_file(folder, name)
        if not path.is_file():
            continue
        for step, value in parse(path.read_text(encoding="utf-8"), name):
            rows.setdefault(step, {EPOCH: float(step)})[name] = value
    return [rows[step] for step in sorted(rows)]
