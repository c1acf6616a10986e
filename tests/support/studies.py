"""A tiny sweep, and the study's runs and experiments as its tests read them."""

from __future__ import annotations

import mlflow

from tests.support.workspace import Repo

SWEEPS = """\
tiny:
  description: a learning rate, one epoch a trial
  space:
    train.learning_rate: {low: 0.0005, high: 0.005, log: true}
  objective: val/neg_elbo
  trials: 3
  pruning: false
longer:
  description: two epochs a trial, pruned from the first on, once one trial has finished
  fixed: {train.epochs: 2}
  space:
    train.learning_rate: {low: 0.000001, high: 0.005, log: true}
  objective: val/neg_elbo
  trials: 2
  pruning: {after_trials: 1, after_epochs: 0}
"""


def with_sweeps(repo: Repo) -> Repo:
    (repo.root / "sweeps.yaml").write_text(SWEEPS)
    repo.commit("the test's sweeps")
    return repo


def client(repo: Repo) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(repo.env.get("MLFLOW_TRACKING_URI")
                               or f"sqlite:///{repo.root / 'mlflow.db'}")  # fmt: skip


def runs(repo: Repo, where: str) -> list[mlflow.entities.Run]:
    found = client(repo)
    experiment = found.get_experiment_by_name("vae-mnist")
    return found.search_runs([experiment.experiment_id], where, max_results=1000)


def experiments(repo: Repo) -> set[str]:
    """The names of the DVC experiments the repository holds (`dvc exp list`)."""
    listed = repo.dvc("exp", "list", "--name-only").stdout.split()
    return set(listed)
