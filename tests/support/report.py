"""Sides of a comparison made by hand, and `make report` run on the shrunk pipeline's versions:
what the report's tests, on constructed sides, on the pipeline and in Chromium, share."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.workspace import BIN, Repo
from vae_mnist.common.quantities import TEST_NEG_ELBO
from vae_mnist.experiments.noise import keep_spread
from vae_mnist.experiments.report.sides import Files, params_of

EXPERIMENT = "faster"  # the other tiny version: HEAD's params but the learning rate


def tree(dvc_yaml: str) -> Files:
    return Files(lambda path: dvc_yaml.encode() if path == "dvc.yaml" else None, lambda _: [])


def _inline(tokens):
    for token in tokens:
        yield token
        yield from token.children or []


@pytest.fixture(scope="session")
def compared(built_pipeline: Repo, tmp_path_factory: pytest.TempPathFactory) -> Repo:
    """The built pipeline (HEAD, registered as v1) and the experiment `faster` (v2), applied in
    the workspace as `dvc exp run` leaves it. Once a session: the e2e and the browser tests of
    the report read it (in one pytest-xdist worker: conftest.SHARED_BUILDS)."""
    repo = built_pipeline.copy(tmp_path_factory.mktemp("report") / "repo")
    repo.dvc("exp", "run", "-n", EXPERIMENT, "-S", "train.learning_rate=0.003")
    repo.printed = report(repo).stdout  # `make report`: the workspace against HEAD
    return repo


def report(repo: Repo, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return repo.run(str(BIN / "python"), "-m", "vae_mnist", "report", *args, check=check)


def out(repo: Repo, folder: str = "compare") -> Path:
    return repo.root / "reports" / folder


def spread(repo: Repo, neg_elbo: float) -> Path:
    """A constructed seed-to-seed range of HEAD's configuration (two made-up seeds)."""
    params = params_of(Files.workspace(repo.root), "HEAD")
    runs = {"1": {TEST_NEG_ELBO: 100.0}, "2": {TEST_NEG_ELBO: 100.0 + neg_elbo}}
    return keep_spread(repo.root, params, runs, "test").path
