"""A sweep's MLflow run: the parent that every trial's stage runs nest under, and what the study
reports on it (the best value, the figures, the best trial as a recipe).

One run per sweep and store, whichever worker on whichever machine comes first. Two workers
that start at the same moment may each make one; each then keeps the oldest and deletes its own,
so the trials still meet under one parent.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import RunStatus, ViewType

from vae_mnist.common.quantities import at_best
from vae_mnist.tracking import names
from vae_mnist.tracking.runs import run_tags
from vae_mnist.tracking.store import experiment_id

STAGE = "sweep"  # the run's `stage` tag: not a DVC stage, the search over them
ARTIFACTS = "sweep"  # the run's folder of figures and the best recipe


def _quoted(value: str) -> str:
    return value.replace("'", "\\'")


def sweep_run(experiment: str, sweep: str, storage: str) -> str:
    """The id of the sweep's run in `experiment`, made if there is none, and marked RUNNING."""
    client, exp_id = MlflowClient(), experiment_id(experiment)

    def found() -> list:
        return client.search_runs(
            [exp_id],
            filter_string=f"tags.`{names.STAGE}` = '{STAGE}' and "
            f"tags.`{names.SWEEP_NAME}` = '{_quoted(sweep)}'",
            run_view_type=ViewType.ACTIVE_ONLY,
        )

    runs = found()
    if not runs:
        tags = {
            **{k: v for k, v in run_tags(STAGE).items() if not k.startswith(names.MACHINE)},
            names.SWEEP_NAME: sweep,
            names.SWEEP_STORAGE: storage,
        }
        mine = client.create_run(exp_id, run_name=f"{STAGE}@{sweep}", tags=tags).info.run_id
        runs = found()
        keep = min(runs, key=lambda run: (run.info.start_time, run.info.run_id)).info.run_id
        if keep != mine:
            client.delete_run(mine)
    run_id = min(runs, key=lambda run: (run.info.start_time, run.info.run_id)).info.run_id
    client.update_run(run_id, status=RunStatus.to_string(RunStatus.RUNNING))
    return run_id


def experiment_metrics(experiment: str, dvc_experiment: str, stage: str) -> dict[str, float] | None:
    """The metrics of the stage's finished run in a DVC experiment (the latest; None: no such
    run)."""
    client = MlflowClient()
    runs = client.search_runs(
        [experiment_id(experiment)],
        filter_string=f"tags.`{names.DVC_TAGS[names.DVC_EXP_NAME]}` = '{_quoted(dvc_experiment)}'"
        f" and tags.`{names.STAGE}` = '{stage}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return dict(runs[0].data.metrics) if runs else None


def experiment_metric(experiment: str, dvc_experiment: str, stage: str, name: str) -> float | None:
    """A metric of the stage's finished run in a DVC experiment (the latest; None: no such run
    or metric)."""
    return (experiment_metrics(experiment, dvc_experiment, stage) or {}).get(name)


def report(
    run_id: str,
    metric: str,
    best: float | None,
    finished: int,
    tags: Mapping[str, str],
    files: list[Path],
) -> None:
    """The study so far on the sweep's run: the best value (a step per finished trial), tags
    naming the best trial, and the figures and recipe files."""
    client = MlflowClient()
    if best is not None:
        client.log_metric(run_id, at_best(metric), best, step=finished)
    for key, value in tags.items():
        client.set_tag(run_id, key, value)
    for path in files:
        client.log_artifact(run_id, str(path), artifact_path=ARTIFACTS)


def end(run_id: str, interrupted: bool) -> None:
    client = MlflowClient()
    status = RunStatus.KILLED if interrupted else RunStatus.FINISHED
    client.set_terminated(run_id, status=RunStatus.to_string(status))
