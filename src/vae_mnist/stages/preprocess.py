"""The `preprocess` stage: raw IDX files -> float32 train/val/test arrays and their stats."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vae_mnist.common.config import Config
from vae_mnist.common.outputs import atomic_directory
from vae_mnist.common.pipeline import own_name, stage_params
from vae_mnist.common.quantities import TEST, TRAIN, metric
from vae_mnist.data.arrays import STATS_FILE, save_dataset, split_files
from vae_mnist.data.idx import read_split
from vae_mnist.data.splits import build_splits, stats
from vae_mnist.tracking import runs

STAGE = own_name(__name__)


def preprocess(config: Config, raw_dir: Path, out_dir: Path) -> dict[str, Any]:
    """Write the splits and stats.json to `out_dir`; returns the stats."""
    params = config.params(stage_params(STAGE))
    with runs.stage_run(STAGE, config.mlflow.experiment_name, params):
        splits = build_splits(config, read_split(raw_dir, TRAIN), read_split(raw_dir, TEST))
        with atomic_directory(out_dir) as staging:
            recorded = save_dataset(staging, splits, stats(config, splits))
        for name, (images, labels) in splits.items():
            info = recorded["splits"][name]
            runs.log(
                metrics={
                    metric(name, "count"): info["count"],
                    metric(name, "pixel_mean"): info["pixel_mean"],
                }
            )
            runs.log_dataset(name, images, labels, split_files(out_dir, name)[0], info["digest"])
        runs.log(documents={STATS_FILE: recorded})
    return recorded
