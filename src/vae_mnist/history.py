"""The per-epoch history (reports/training): DVCLive writes it while the model trains, DVC plots it,
evaluate reads it back for its training-curves figure.

Epoch n is step n, as in MLflow (tracking/models.py), so a curve has the same x in `dvc plots` and
in the MLflow UI. DVCLive leaves dvc.yaml alone (the plots are declared there by hand), saves no
experiment of its own (`dvc exp run` does that) and writes no timestamps, so a rerun writes the
same bytes.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import keras
from dvclive import Live

from vae_mnist.quantities import EPOCH_NAMES

EPOCH = "epoch"
STEP = "step"  # DVCLive's name for the x of every metric file


def metric_file(folder: Path, name: str) -> Path:
    """Where DVCLive keeps the values of one quantity (`val/neg_elbo` -> .../val/neg_elbo.tsv)."""
    return folder / "plots" / "metrics" / f"{name}.tsv"


class EpochLog(keras.callbacks.Callback):
    """DVCLive's logger, under the history's names, one step per epoch counted from 1.

    Each step writes every file (`next_step`), so `Live.end()` is not called: inside `dvc exp run`
    it git-adds its folder unless the folder is a stage's out, and the train stage has DVCLive
    write into a staging folder that becomes the out only once training has succeeded.
    """

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.live = Live(str(folder), save_dvc_exp=False, dvcyaml=False, report=None)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.live.step = epoch + 1
        for key, value in (logs or {}).items():
            if key in EPOCH_NAMES:
                self.live.log_metric(EPOCH_NAMES[key], float(value))
        self.live.next_step()


def read(folder: Path) -> list[dict[str, float]]:
    """The history as rows, one per epoch: `epoch` and each quantity DVCLive logged."""
    rows: dict[int, dict[str, float]] = {}
    for name in EPOCH_NAMES.values():
        path = metric_file(folder, name)
        if not path.is_file():
            continue
        with path.open(newline="", encoding="utf-8") as f:
            for record in csv.DictReader(f, delimiter="\t"):
                step = int(record[STEP])
                rows.setdefault(step, {EPOCH: float(step)})[name] = float(record[Path(name).name])
    return [rows[step] for step in sorted(rows)]
