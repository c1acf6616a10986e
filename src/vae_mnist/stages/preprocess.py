"""The `preprocess` stage: raw IDX files -> float32 train/val/test arrays and their stats."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow

from vae_mnist.config import Config
from vae_mnist.data.arrays import STATS_FILE, save_dataset, split_files
from vae_mnist.data.idx import read_split
from vae_mnist.data.splits import build_splits, stats
from vae_mnist.outputs import atomic_directory
from vae_mnist.quantities import metric
from vae_mnist.tracking.runs import log_dataset, stage_run

PARAMS = ("seed", "data.val_size", "data.binarize")


def preprocess(config: Config, raw_dir: Path, out_dir: Path) -> dict[str, Any]:
    """Write the splits and stats.json to `out_dir`; returns the stats."""
    params = {key: config.flat()[key] for key in PARAMS}
    with stage_run("preprocess", config.mlflow.experiment_name, params):
        splits = build_splits(config, read_split(raw_dir, "train"), read_split(raw_dir, "test"))
        with atomic_directory(out_dir) as staging:
            recorded = save_dataset(staging, splits, stats(config, splits))
        for name, (images, labels) in splits.items():
            info = recorded["splits"][name]
            mlflow.log_metrics(
                {
                    metric(name, "count"): info["count"],
                    metric(name, "pixel_mean"): info["pixel_mean"],
                }
            )
            log_dataset(name, images, labels, split_files(out_dir, name)[0], info["digest"])
        mlflow.log_dict(recorded, STATS_FILE)
    return recorded
