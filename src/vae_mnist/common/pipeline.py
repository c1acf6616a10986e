"""The pipeline as dvc.yaml declares it: the stages' names, the params each one reads, and the
files of their outs that code outside the stage reads back.

dvc.yaml is the one place a stage's params are listed: DVC reruns the stage when one of them
changes, and the stage logs exactly those to its MLflow run (`stage_params`).
"""

from __future__ import annotations

import functools
from pathlib import Path

from vae_mnist.common.config import project_root, read_yaml
from vae_mnist.common.errors import ConfigError

PIPELINE_FILE = "dvc.yaml"
# The names code outside a stage runs it by (`dvc repro <name>`, a run's `stage` tag), checked
# against dvc.yaml by the tests.
DOWNLOAD, PREPROCESS, TRAIN, EVALUATE = "download", "preprocess", "train", "evaluate"
# What the evaluate stage's out holds, for code that reads it back (the report, the explorer).
METRICS_FILE = "metrics.json"  # the headline numbers: dvc.yaml's metrics, `dvc exp show` columns
PER_DIGIT_FILE = "per_digit.json"  # the same means per digit: a DVC plot, one record per digit
FIGURES_DIR = "figures"
LATENT = "latent"  # the test set's latent means, as LATENT_FILES (also logged to the train run)
LATENT_FILES = ("z_mean.npy", "labels.npy")  # (N, latent_dim) float32, (N,) uint8


@functools.cache
def _stages(path: Path) -> dict[str, dict]:
    found = read_yaml(path)
    stages = found.get("stages") if isinstance(found, dict) else None
    if not isinstance(stages, dict) or not stages:
        raise ConfigError(f"{path}: declares no stages")
    return stages


def stages(root: Path | None = None) -> dict[str, dict]:
    """dvc.yaml's stages, in order, as declared (read once a process)."""
    path = (root or project_root()) / PIPELINE_FILE
    if not path.is_file():
        raise ConfigError(f"{path}: no such file (run from the project's root)")
    return _stages(path.resolve())


def own_name(module: str) -> str:
    """A stage module's stage, which is its module's name (`vae_mnist.stages.train` -> train):
    a new stage names itself, with no constant here (these are for code outside a stage)."""
    return module.rsplit(".", 1)[-1]


def stage_params(stage: str, root: Path | None = None) -> tuple[str, ...]:
    """The params.yaml keys the stage reads, as dvc.yaml lists them (a section: all its keys)."""
    return tuple(str(key) for key in stages(root)[stage].get("params", []))


def computed(root: Path | None = None) -> tuple[str, ...]:
    """What an experiment that must train runs, forced (`dvc exp run -f -s ...`) so that DVC's
    run cache never stands in for it: every stage but the download, whose files come from the
    cache."""
    return tuple(name for name in stages(root) if name != DOWNLOAD)
