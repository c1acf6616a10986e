"""A stage's MLflow run: opening it with the name and tags every run carries, and logging datasets.

A stage opens exactly one run, named `<stage>@<DVC experiment>` (or `@<short commit>` outside
one), so that a grid of experiments reads as such in the runs table; a store that fails during
the stage ends it with one line that names the store.
"""

from __future__ import annotations

import os
import re
import subprocess
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
import mlflow.data
import numpy as np
import requests
from mlflow.entities import LoggedModelInput, RunStatus
from mlflow.exceptions import MlflowException
from mlflow.utils.mlflow_tags import MLFLOW_GIT_COMMIT

from vae_mnist.common.config import project_root
from vae_mnist.common.errors import Stopped, TrackingError
from vae_mnist.common.machine import fingerprint
from vae_mnist.tracking import names
from vae_mnist.tracking.store import (
    experiment_id,
    first_line,
    hint,
    locked,
    shown_uri,
    unreachable,
)


def _git(*args: str) -> str | None:
    try:
        result = subprocess.run(
            ["git", *args], cwd=project_root(), capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


# Tracked files whose changes a run records otherwise: the params it logs, and DVC's own lock
# (which `dvc repro` rewrites after each stage). Neither makes the code a run ran uncommitted.
RECORDED_ELSEWHERE = (":(exclude)params.yaml", ":(exclude)dvc.lock")


def run_tags(stage: str) -> dict[str, str]:
    """Tags that tie a run to its stage, its code and, when DVC ran it, its DVC experiment.

    The commit is MLflow's own tag. A queued experiment runs in a copy of the workspace whose
    HEAD is DVC's, not the user's: the commit it was queued from is DVC's baseline revision.
    """
    tags = {names.STAGE: stage}
    if baseline := os.environ.get(names.DVC_BASELINE):
        tags[MLFLOW_GIT_COMMIT] = baseline
    elif commit := _git("rev-parse", "HEAD"):
        tags[MLFLOW_GIT_COMMIT] = commit
        tags[names.GIT_DIRTY] = str(bool(_git("status", "--porcelain", "--untracked-files=no",
                                              "--", ".", *RECORDED_ELSEWHERE)))  # fmt: skip
    for variable, tag in {**names.DVC_TAGS, **names.SWEEP_TAGS}.items():
        if value := os.environ.get(variable):
            tags[tag] = value
    return {**tags, **machine_tags(fingerprint(project_root()))}


def machine_tags(found: Mapping[str, Any]) -> dict[str, str]:
    """The machine's fingerprint as `machine.*` tags: lists comma-joined, settings as NAME=value
    (none set: `none`)."""

    def shown(value: Any) -> str:
        if isinstance(value, Mapping):
            value = [f"{name}={setting}" for name, setting in value.items()]
        if isinstance(value, list | tuple):
            return ",".join(map(str, value)) or names.NONE
        return names.NONE if value is None else str(value)

    return {names.machine_tag(field): shown(value) for field, value in found.items()}


def run_name(stage: str, tags: Mapping[str, str]) -> str:
    """`train@bold-kite` in a DVC experiment, `train@1a2b3c4` outside one, else `train`."""
    label = tags.get(names.DVC_TAGS[names.DVC_EXP_NAME]) or tags.get(MLFLOW_GIT_COMMIT, "")[:7]
    return f"{stage}@{label}" if label else stage


@contextmanager
def stage_run(
    stage: str, experiment: str, params: Mapping[str, Any] | None = None
) -> Iterator[mlflow.ActiveRun]:
    """One MLflow run for the stage; it ends FAILED if the stage raises, KILLED if it is
    interrupted (Ctrl-C, SIGTERM) or stopped on purpose (a sweep's pruner): never left RUNNING.

    A store that stops answering while the stage runs (the server, its database or its artifact
    store down, a sqlite file locked too long) ends the stage with one line naming it, not
    MLflow's traceback.
    """
    exp_id = experiment_id(experiment)
    try:
        tags = run_tags(stage)
        with mlflow.start_run(
            experiment_id=exp_id, run_name=run_name(stage, tags), tags=tags
        ) as run:
            try:
                # Reading the run's artifact folder reaches the artifact store too (through a
                # server that proxies it): a store that is down fails the stage now, before its
                # work.
                mlflow.MlflowClient().list_artifacts(run.info.run_id)
                if params:
                    mlflow.log_params(dict(params))
                yield run
            except (KeyboardInterrupt, Stopped):
                mlflow.end_run(RunStatus.to_string(RunStatus.KILLED))
                raise
    except (MlflowException, requests.RequestException) as error:
        if not (unreachable(error) or locked(error)):
            raise
        raise TrackingError(
            f"MLflow store {shown_uri()} failed during the {stage} stage: {first_line(error)} "
            f"({hint(error)})"
        ) from None


def log(
    params: Mapping[str, Any] | None = None,
    metrics: Mapping[str, float] | None = None,
    documents: Mapping[str, Any] | None = None,
) -> None:
    """Params, metrics and JSON documents (file name -> data) on the stage's active run."""
    if params:
        mlflow.log_params(dict(params))
    if metrics:
        mlflow.log_metrics(dict(metrics))
    for file_name, document in (documents or {}).items():
        mlflow.log_dict(document, file_name)


def log_dataset(
    split: str,
    images: np.ndarray,
    labels: np.ndarray,
    source: Path,
    digest: str,
    model_id: str | None = None,
) -> mlflow.data.Dataset:
    """Log a split as an MLflow dataset input (with the model it was fed to, if any); the same
    digest marks the same data in every run. The dataset, to link metrics to."""
    with warnings.catch_warnings():
        # MLflow 3.x registers its local-file source twice and warns that a path is ambiguous
        # between the two identical classes; nothing to act on.
        warnings.simplefilter("ignore", UserWarning)
        dataset = mlflow.data.from_numpy(
            images,
            targets=labels,
            source=source.resolve().as_uri(),
            name=names.dataset_name(split),
            digest=digest,
        )
    model = LoggedModelInput(model_id) if model_id else None
    try:
        mlflow.log_input(dataset, context=names.DATASET_CONTEXT[split], model=model)
    except MlflowException as error:
        # MLflow's store looks for the dataset, then inserts it: two runs logging the same new
        # dataset at once (two sweep workers' first trials) collide on its key. Logged again,
        # it finds the other's row and links to it.
        if not DATASET_RACE.search(str(error)):
            raise
        mlflow.log_input(dataset, context=names.DATASET_CONTEXT[split], model=model)
    return dataset


# The datasets table's key, as PostgreSQL and sqlite name a duplicate of it.
DATASET_RACE = re.compile(r'unique constraint "dataset_pk"|UNIQUE constraint failed: datasets\.')
