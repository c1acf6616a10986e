"""Fixtures: the real pipeline built once per session, and a copy of it per test."""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.configs import SHRUNK
from tests.support.data import (
    real_mnist,
)
from tests.support.workspace import STAGES, Repo


@pytest.fixture(scope="session")
def built_pipeline(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    """The real pipeline, download to evaluate, run once per session by `dvc repro` on real
    MNIST with the shrunk params (support.configs.SHRUNK). Tests read it, and change only copies of
    it (the `pipeline` fixture): building it is the expensive part. Under pytest-xdist the
    first worker to need it builds it and the others wait for it and share it.

    Its history: the copied tree, then the shrunk params (the stages ran at that commit, HEAD~1),
    then dvc.lock. `printed` is what that `dvc repro` printed."""

    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the session's folder, above each worker's own
    folder, printed = shared / "built", shared / "built" / "printed.txt"
    with exclusive(shared / "built.lock"):
        if not printed.is_file():
            shutil.rmtree(folder, ignore_errors=True)  # a build that failed in another worker
            repo = Repo(folder / "repo", str(real_mnist()))
            repo.set_params(SHRUNK)
            repo.commit("the shrunk params")
            assert repo.repro() == STAGES
            repo.commit("the shrunk pipeline's lock")
            printed.write_text(repo.printed)
    repo = Repo.at(folder / "repo", str(real_mnist()))
    repo.printed = printed.read_text()
    return repo


@contextmanager
def exclusive(lock: Path) -> Iterator[None]:
    """Held by one process of the session at a time (an advisory lock on `lock`)."""
    with lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture
def pipeline(built_pipeline: Repo, tmp_path: Path) -> Repo:
    """A copy of the built pipeline of this test's own: change it at will."""
    return built_pipeline.copy(tmp_path / "repo")
