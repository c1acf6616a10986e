"""A registered version's lineage as its store recorded it, and the verdicts of its rebuilds.

Everything `make reproduce` needs to rebuild a version comes from here: the commit its training
run ran at (and whether the workspace was clean), the params it logged, the digests of the data
it trained and was tested on, the sha256 of its model file, its test metrics, and the machine it
was computed on. The same reading of the rebuild's own store gives what the rebuild made.
"""

from __future__ import annotations

from dataclasses import dataclass

import mlflow
from mlflow.utils.mlflow_tags import MLFLOW_GIT_COMMIT

from vae_mnist.common.quantities import TEST
from vae_mnist.tracking import names
from vae_mnist.tracking.store import model_versions

REPRODUCED = "reproduced"  # model version tags: reproduced/<machine id> = the verdict there
# Params a train run holds that are not params.yaml's: its topology (stages/train.py), and the
# optimizer's settings that mlflow.keras.MlflowCallback logs (EpochMetrics is one).
NOT_PARAMS_YAML = ("distribution.", "optimizer_")


@dataclass(frozen=True)
class Lineage:
    version: str
    run_id: str
    commit: str | None
    dirty: bool
    params: dict[str, str]  # params.yaml's keys as the training run logged them
    data: dict[str, str]  # split -> the digest of the arrays (train, val; test if evaluated)
    model_sha256: str | None
    metrics: dict[str, float]  # the test metrics its evaluation gave (test/...)
    machine: str | None  # the id of the machine it was trained on (machine.py)
    evaluation_run: str | None = None  # its latest evaluate run (None: never evaluated)


def read_lineage(model_name: str, version: str, store: str | None = None) -> Lineage:
    """The lineage of version `version` (a number) of `model_name` in `store` (a tracking URI;
    None: the project's)."""
    client = mlflow.MlflowClient(store)
    held = client.get_model_version(model_name, version)
    run = client.get_run(held.run_id)
    tags = run.data.tags
    data = _digests(run)
    evaluations = client.search_runs(
        [run.info.experiment_id],
        f"tags.{names.TRAIN_RUN} = '{held.run_id}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    for evaluation in evaluations:  # search_runs leaves the inputs out
        data.update(_digests(client.get_run(evaluation.info.run_id)))
    evaluated = evaluations[0].info.run_id if evaluations else None
    return Lineage(
        version=str(held.version),
        run_id=held.run_id,
        commit=tags.get(MLFLOW_GIT_COMMIT),
        dirty=tags.get(names.GIT_DIRTY) == "True",
        params={k: v for k, v in run.data.params.items() if not k.startswith(NOT_PARAMS_YAML)},
        data=dict(sorted(data.items())),
        model_sha256=held.tags.get(names.MODEL_DIGEST),
        metrics={k: v for k, v in sorted(run.data.metrics.items()) if k.startswith(f"{TEST}/")},
        machine=held.tags.get(names.machine_tag("id")),
        evaluation_run=evaluated,
    )


def latest_version(model_name: str, store: str | None = None) -> str | None:
    """The newest version of `model_name` in `store` (a rebuild's store holds one)."""
    found = model_versions(mlflow.MlflowClient(store), model_name)
    return str(max(int(v.version) for v in found)) if found else None


def made_data(experiment: str, store: str | None = None) -> dict[str, str]:
    """The data digests of the newest preprocess run in `store`: what it made."""
    client = mlflow.MlflowClient(store)
    found = client.get_experiment_by_name(experiment)
    runs = client.search_runs(
        [found.experiment_id] if found else [],
        f"tags.{names.STAGE} = 'preprocess'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return _digests(client.get_run(runs[0].info.run_id)) if runs else {}


def _digests(run: mlflow.entities.Run) -> dict[str, str]:
    splits = {names.dataset_name(split): split for split in names.DATASET_CONTEXT}
    return {
        splits[used.dataset.name]: used.dataset.digest
        for used in run.inputs.dataset_inputs
        if used.dataset.name in splits
    }


def record_verdict(model_name: str, version: str, machine_id: str, verdict: str) -> None:
    """Tag the version with the verdict of its rebuild on the machine `machine_id`."""
    mlflow.MlflowClient().set_model_version_tag(
        model_name, version, f"{REPRODUCED}/{machine_id}", verdict
    )
