"""Registered versions as the explorer shows them: found by number or alias, with the files it
draws from (the checkpoint the decoder comes from, the latent means the evaluate stage logged),
their test metrics and a link to their training run in the MLflow UI."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from vae_mnist.common.errors import ExplorerError, TrackingError
from vae_mnist.common.outputs import file_sha256
from vae_mnist.common.pipeline import LATENT, LATENT_FILES
from vae_mnist.common.quantities import TEST
from vae_mnist.tracking import names
from vae_mnist.tracking.store import (
    first_line,
    hint,
    locked,
    model_versions,
    shown_uri,
    ui_base,
    unreachable,
)

_NUMBER = re.compile(r"v?(\d+)")
T = TypeVar("T")


@dataclass(frozen=True)
class VersionRecord:
    """What the page says about a version, before anything of it is loaded."""

    version: str
    aliases: tuple[str, ...]
    run_id: str
    run_url: str
    metrics: dict[str, float] = field(default_factory=dict)  # the training run's test metrics


def _client() -> mlflow.MlflowClient:
    return mlflow.MlflowClient()


def _answering(what: str, call: Callable[[], T]) -> T:
    """The call's result; a store that stops answering is one TrackingError naming it."""
    try:
        return call()
    except Exception as error:  # sqlalchemy, requests and MLflow errors alike
        if isinstance(error, MlflowException) and not (unreachable(error) or locked(error)):
            raise
        raise TrackingError(
            f"MLflow store {shown_uri()} failed while reading {what}: {first_line(error)} "
            f"({hint(error)})"
        ) from None


def all_versions(model_name: str) -> list[ModelVersion]:
    """Every version of the registered model, newest first; none is an error that says why."""
    client = _client()
    found: list[ModelVersion] = _answering(model_name, lambda: model_versions(client, model_name))
    if not found:
        raise ExplorerError(
            f"{shown_uri()} holds no version of {model_name}: run the pipeline (make repro) "
            "first, or point MLFLOW_TRACKING_URI at the store that has it"
        )
    return sorted(found, key=lambda v: -int(v.version))


def aliases(model_name: str) -> dict[str, list[str]]:
    """Each version's aliases (version searches leave them out on some stores)."""
    client = _client()
    held = _answering(model_name, lambda: client.get_registered_model(model_name)).aliases
    found: dict[str, list[str]] = {}
    for alias, version in sorted(held.items()):
        found.setdefault(str(version), []).append(alias)
    return found


def find_version(model_name: str, ref: str) -> str:
    """The version number `ref` names: a number (`3`, `v3`) or an alias (`@champion`)."""
    numbers = [str(v.version) for v in all_versions(model_name)]
    listed = ", ".join(numbers[:20]) + (", ..." if len(numbers) > 20 else "")
    if found := _NUMBER.fullmatch(ref.strip()):
        number = str(int(found.group(1)))
        if number in numbers:
            return number
        raise ExplorerError(f"{model_name} has no version {number} (it has {listed})")
    alias = ref.strip().removeprefix("@")
    held = aliases(model_name)
    for number, names_ in held.items():
        if alias in names_:
            return number
    every = sorted(a for names_ in held.values() for a in names_)
    raise ExplorerError(
        f"no version of {model_name} holds the alias {alias!r} (aliases: "
        f"{', '.join(every) or 'none'}; versions: {listed})"
    )


def describe(model_name: str, versions: list[ModelVersion] | None = None) -> list[VersionRecord]:
    """Each version's record, newest first."""
    client = _client()
    held = aliases(model_name)
    records = []
    for v in versions if versions is not None else all_versions(model_name):
        run = _answering(f"run {v.run_id}", lambda v=v: client.get_run(v.run_id))
        experiment = run.info.experiment_id
        metrics = {k: value for k, value in run.data.metrics.items() if k.startswith(f"{TEST}/")}
        records.append(
            VersionRecord(
                version=str(v.version),
                aliases=tuple(held.get(str(v.version), ())),
                run_id=v.run_id,
                run_url=f"{ui_base()}/#/experiments/{experiment}/runs/{v.run_id}",
                metrics=dict(sorted(metrics.items())),
            )
        )
    return records


def record(model_name: str, version: str) -> VersionRecord:
    client = _client()
    v = _answering(
        f"{model_name} v{version}", lambda: client.get_model_version(model_name, version)
    )
    return describe(model_name, [v])[0]


def _download(**where: str) -> str:
    """MLflow's download, without the progress bar it draws for each version's few files (the
    setting holds for the process: set once, never reset, so threads never race on it)."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    return mlflow.artifacts.download_artifacts(**where)


def download_checkpoint(model_name: str, version: str, folder: Path) -> Path:
    """The version's checkpoint (the whole VAE, from which the decoder comes), in `folder`,
    checked against the sha256 its version records."""
    uri = f"models:/{model_name}/{version}"
    try:
        files = Path(_download(artifact_uri=uri, dst_path=str(folder)))
    except MlflowException as error:
        raise ExplorerError(
            f"the files of {model_name} v{version} cannot be read: {first_line(error)}"
        ) from None
    # the checkpoint folder holds the one .keras file the train stage wrote, under its own name
    found = sorted((files / names.CHECKPOINT).glob("*.keras"))
    if len(found) != 1:
        raise ExplorerError(
            f"{model_name} v{version} has no decoder: its files lack "
            f"{names.CHECKPOINT}/<model>.keras (a model not logged by this project's train "
            "stage?)"
        )
    checkpoint = found[0]
    client = _client()
    recorded = _answering(
        f"{model_name} v{version}", lambda: client.get_model_version(model_name, version)
    ).tags.get(names.MODEL_DIGEST)
    if recorded != (actual := file_sha256(checkpoint)):
        raise ExplorerError(
            f"{model_name} v{version} is not what was registered: its checkpoint's sha256 is "
            f"{actual[:12]}, its {names.MODEL_DIGEST} tag says {str(recorded)[:12]}"
        )
    return checkpoint


def download_latent(model_name: str, version: str, run_id: str, folder: Path) -> Path:
    """The folder of the test set's latent means that the version's evaluation logged."""
    try:
        latent = _download(run_id=run_id, artifact_path=LATENT, dst_path=str(folder))
    except (MlflowException, OSError):
        latent = None
    if latent is None or not all((Path(latent) / f).is_file() for f in LATENT_FILES):
        raise ExplorerError(
            f"{model_name} v{version} has no latent means from an evaluation (no "
            f"{LATENT}/ in its training run {run_id}; evaluated before the explorer "
            "existed, or never): open a version evaluated since (make explore "
            "EXPLORE_VERSION=<number>)"
        )
    return Path(latent)


def version_url(model_name: str, version: str) -> str:
    """The version's page in the MLflow UI."""
    return f"{ui_base()}/#/models/{model_name}/versions/{version}"


def with_model(model_name: str, model_sha256: str) -> str | None:
    """The newest version whose model file has this sha256 (None: no version of this store
    registered those bytes)."""
    for v in all_versions(model_name):
        if v.tags.get(names.MODEL_DIGEST) == model_sha256:
            return str(v.version)
    return None


def history(run_id: str, quantities: list[str]) -> dict[str, list[tuple[int, float]]]:
    """Each quantity's per-epoch values as the training run logged them: (epoch, value)."""
    client = _client()
    found = {}
    for name in quantities:
        points = _answering(f"run {run_id}", lambda n=name: client.get_metric_history(run_id, n))
        if points:
            found[name] = sorted((int(p.step), float(p.value)) for p in points)
    return found


def run_files(run_id: str, files: list[str], folder: Path) -> dict[str, Path]:
    """Those of `files` that the run logged, downloaded into `folder`."""
    found = {}
    for name in files:
        try:
            found[name] = Path(_download(run_id=run_id, artifact_path=name, dst_path=str(folder)))
        except (MlflowException, OSError):
            continue
    return found


def run_folder(run_id: str, artifact_path: str, folder: Path) -> Path | None:
    """A folder of the run's artifacts, downloaded into `folder`; None: the run has none."""
    try:
        return Path(_download(run_id=run_id, artifact_path=artifact_path, dst_path=str(folder)))
    except (MlflowException, OSError):
        return None
