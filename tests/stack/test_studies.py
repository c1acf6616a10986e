"""`make sweep` on the team stack's PostgreSQL: two clones sharing one study. On sqlite:
tests/e2e/test_studies.py."""

from __future__ import annotations

import subprocess
from pathlib import Path

import mlflow
import optuna
import pytest
from optuna.trial import TrialState

from tests.support.stack import log_in
from tests.support.studies import experiments, with_sweeps
from tests.support.workspace import BIN, Repo
from vae_mnist_tools.stack.state import Stack


def test_two_machines_share_one_study_on_the_stacks_postgresql(
    built_pipeline: Repo, team_stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two clones, each with its own worker, started separately: the study in the stack's
    PostgreSQL hands out each trial once, and every one lands under one sweep run."""
    # Its own experiment and model on the shared stack, beside the other tests' runs.
    names = "mlflow.experiment_name: sweep-test, mlflow.registered_model_name: sweep-test"
    own = f"  fixed: {{{names}}}\n"
    clones = [with_sweeps(built_pipeline.copy(tmp_path / name)) for name in ("one", "two")]
    for clone in clones:
        sweeps = clone.root / "sweeps.yaml"
        sweeps.write_text(sweeps.read_text().replace("  trials: 3\n", "  trials: 3\n" + own, 1))
        clone.commit("the sweep in its own experiment")
    for clone in clones:
        clone.env.update(team_stack.client_env())
    sink = [(tmp_path / f"{n}.txt").open("wb") for n in ("one", "two")]
    workers = [
        subprocess.Popen(
            [str(BIN / "python"), "-m", "vae_mnist", "sweeps", "run", "tiny", "-n", "3"],
            cwd=clone.root,
            env=clone.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        for clone, out in zip(clones, sink, strict=True)
    ]
    for worker, out in zip(workers, sink, strict=True):
        assert worker.wait(timeout=900) == 0, Path(out.name).read_text()
        out.close()
    storage = team_stack.client_env()["VAE_MNIST_SWEEP_STORAGE"]
    trials = optuna.load_study(study_name="tiny", storage=storage).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    ran = [experiments(clone) for clone in clones]
    assert ran[0] | ran[1] == {"tiny-0", "tiny-1", "tiny-2"} and not ran[0] & ran[1]
    assert all(ran), "each worker ran a trial"
    log_in(team_stack, monkeypatch)
    mlflow_client = mlflow.MlflowClient(team_stack.tracking_uri)
    experiment = mlflow_client.get_experiment_by_name("sweep-test")
    (parent,) = mlflow_client.search_runs(
        [experiment.experiment_id], "tags.stage = 'sweep' and tags.`sweep.name` = 'tiny'"
    )
    trained = mlflow_client.search_runs(
        [experiment.experiment_id],
        f"tags.stage = 'train' and tags.`mlflow.parentRunId` = '{parent.info.run_id}'",
    )
    assert sorted(r.data.tags["dvc.exp_name"] for r in trained) == ["tiny-0", "tiny-1", "tiny-2"]
    assert parent.info.status == "FINISHED"
    password = storage.split(":")[2].split("@")[0]
    assert parent.data.tags["sweep.storage"] == storage.replace(f"sweeps:{password}@", "")


def test_runs_logging_the_same_new_dataset_at_once_all_succeed_on_the_server(
    team_stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two sweep workers' first trials log the same new dataset at the same moment: MLflow's
    store looks for it, then inserts it, and the later insert broke one train stage."""
    import threading
    import uuid

    import numpy as np

    from vae_mnist.tracking.runs import log_dataset

    log_in(team_stack, monkeypatch)
    mlflow.set_tracking_uri(team_stack.tracking_uri)
    experiment = mlflow.MlflowClient().create_experiment(f"race-{uuid.uuid4().hex[:8]}")
    images, labels = np.zeros((10, 28, 28), np.float32), np.zeros(10, np.uint8)
    digest = uuid.uuid4().hex[:16]  # a dataset the store has never seen
    start, failures = threading.Barrier(8), []

    def log() -> None:
        with mlflow.start_run(experiment_id=experiment):
            start.wait()
            try:
                log_dataset("train", images, labels, tmp_path / "a.npy", digest)
            except Exception as error:  # counted, whatever it is
                failures.append(str(error)[:300])

    threads = [threading.Thread(target=log) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    runs = mlflow.MlflowClient().search_runs([experiment])
    assert len(runs) == 8
    assert all(r.inputs.dataset_inputs[0].dataset.digest == digest for r in runs)
