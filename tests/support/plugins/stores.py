"""Fixtures: synthetic raw files, a real sqlite MLflow store per test (and forgetting it
afterwards), the real MNIST files."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.data import (
    real_mnist,
    write_raw,
)
from tests.support.paths import REPO
from vae_mnist.common.pipeline import PIPELINE_FILE


@pytest.fixture
def raw_dir(tmp_path: Path) -> Path:
    """200 train and 50 test images, synthetic, as the four MNIST files."""
    return write_raw(tmp_path / "raw")


# MLflow keeps, for the life of the process, one store object per store URI (lru_cache'd in its
# store registries) and one SQLAlchemy engine per database URI. A passed test's tmp_path is deleted
# (tmp_path_retention_policy) and its name given to the next test of the same name's prefix (a
# parametrized one): a new mlflow.db at the same URI, which the cached store takes for its own
# (no tables) and whose engine's pooled connections see it as moved ("attempt to write a
# readonly database"). Private names: checked against mlflow 3.17.
STORE_REGISTRIES = {
    "mlflow.tracking._tracking_service.registry": "TrackingStoreRegistry",
    "mlflow.tracking._model_registry.registry": "ModelRegistryStoreRegistry",
}

SQLALCHEMY_STORES = (
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.model_registry.sqlalchemy_store",
)


@pytest.fixture(autouse=True)
def forget_test_stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """After each test, drop MLflow's stores and engines on sqlite files in this session's
    temporary folders, so that a store made later at the same path is opened afresh."""
    yield
    prefix = f"sqlite:///{tmp_path_factory.getbasetemp()}"
    forgotten = False
    for module in filter(None, map(sys.modules.get, SQLALCHEMY_STORES)):
        engines = module.SqlAlchemyStore._engine_map
        for uri in [uri for uri in engines if uri.startswith(prefix)]:
            engines.pop(uri).dispose()
            forgotten = True
    if forgotten:
        for name, registry in STORE_REGISTRIES.items():
            if name in sys.modules:
                getattr(sys.modules[name], registry)._get_store_with_resolved_uri.cache_clear()


@pytest.fixture
def mlflow_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A real, empty sqlite MLflow store for this test only."""
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)  # so default artifact folders land in the test's own directory
    shutil.copy(REPO / PIPELINE_FILE, tmp_path)  # a stage runs in its project: its params are there
    yield uri
    mlflow.set_tracking_uri(None)


@pytest.fixture
def mnist_mirror() -> Path:
    """The real MNIST files; real-data tests skip without them."""
    return real_mnist()
