"""Shared fixtures: the real default config, tiny synthetic MNIST files, a real MLflow store,
the local team stack."""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import json
import os
import shutil
import signal
import struct
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from vae_mnist.common.config import PARAMS_FILE, Config, load_config, set_dotted
from vae_mnist.common.pipeline import PIPELINE_FILE
from vae_mnist.common.tensorflow_env import quiet_tensorflow
from vae_mnist.data.mnist import SPLIT_FILES, MnistFile
from vae_mnist_tools.stack.control import DEFAULT_PORTS
from vae_mnist_tools.stack.state import Stack

if TYPE_CHECKING:
    from .workspace import Repo

REPO = Path(__file__).resolve().parents[1]
quiet_tensorflow()  # the stages' TensorFlow settings, also for the tests that train in-process


# Started once per session and tens of seconds to start, and not shared between processes: under
# pytest-xdist (`--dist loadgroup`) every test that uses one runs in the same worker. (The built
# pipeline is shared through its folder: see built_pipeline.)
SHARED_BUILDS = ("team_stack",)


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if group := worker_group(item):
            item.add_marker(pytest.mark.xdist_group(group))
    by_mutation_speed(items)


def worker_group(item: pytest.Item) -> str | None:
    """The tests that share a built fixture (a session's shared build, a module's fixture) are
    one group; any other test goes to whichever worker is free."""
    fixtures = getattr(item, "_fixtureinfo", None)
    definitions = fixtures.name2fixturedefs if fixtures else {}
    for name in SHARED_BUILDS:
        if name in definitions:
            return name
    if any(defs[-1].scope == "module" for defs in definitions.values()):
        return item.module.__name__ if isinstance(item, pytest.Function) else None
    return None


def by_mutation_speed(items: list[pytest.Item]) -> None:
    """Under `make mutation`, run the fastest tests first: pytest stops at the first failure,
    so a mutant the pinned-bytes tests kill costs seconds rather than the whole selection."""
    stats = Path("mutmut-stats.json")  # mutmut runs each mutant's tests inside mutants/
    if "__mutmut_" not in os.environ.get("MUTANT_UNDER_TEST", "") or not stats.is_file():
        return
    seconds = json.loads(stats.read_text()).get("duration_by_test", {})
    items.sort(key=lambda item: seconds.get(item.nodeid, float("inf")))


@pytest.fixture
def config() -> Config:
    """The repository's own params.yaml, as every stage reads it."""
    return load_config(REPO / PARAMS_FILE)


# The real params.yaml shrunk for the unit tests (as the end-to-end tests shrink it with
# workspace.SHRUNK): a network that trains on a few hundred synthetic images in a second or two.
# A test changes on top of it only what it is about: override(tiny, {...}).
TINY = {
    "data.val_size": 20,
    "model.mlp.hidden_units": [32, 16],
    "model.latent_dim": 3,
    "train.epochs": 2,
    "train.batch_size": 32,
    "train.learning_rate": 0.003,
    "evaluate.iwae_samples": 3,
}


@pytest.fixture
def tiny(config: Config) -> Config:
    """The repository's params.yaml, shrunk (TINY)."""
    return override(config, TINY)


def blurry_digits(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`n` images in [0, 1] and their labels: each digit lights its own band of rows, plus
    noise, so that a tiny VAE learns something in a few epochs."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 10).astype(np.uint8)
    images = rng.random((n, 28, 28)).astype(np.float32) * 0.2
    for i, digit in enumerate(labels):
        images[i, 2 * digit + 4 : 2 * digit + 8] += 0.7
    return np.clip(images, 0, 1), labels


@dataclass(frozen=True)
class Trained:
    config: Config
    images: np.ndarray  # what it trained on (blurry_digits), labels beside them
    labels: np.ndarray
    model: Any  # the trained vae_mnist.model.vae.VAE
    path: Path  # the same model, saved as the train stage saves it


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """Some trained VAE, once per session, for the tests that only need one: TINY trained three
    epochs on blurry_digits. Read it; a test that changes a model trains its own."""
    from vae_mnist.model.files import save_vae
    from vae_mnist.training.fit import fit_vae

    config = override(load_config(REPO / PARAMS_FILE), {**TINY, "train.epochs": 3})
    images, labels = blurry_digits()
    model = fit_vae(config, images, images[:60], verbose=0).model
    path = tmp_path_factory.mktemp("trained") / "vae.keras"
    save_vae(model, path)
    return Trained(config, images, labels, model, path)


def write_history(folder: Path, rows: list[tuple[float, ...]]) -> Path:
    """A DVCLive history written by the train stage's own callback: one row per epoch, values in
    HISTORY_COLUMNS order (the epoch first, counted from 1)."""
    from vae_mnist.common.quantities import EPOCH_NAMES
    from vae_mnist.training.callbacks import EpochLog

    log = EpochLog(folder)
    for epoch, *values in rows:
        log.on_epoch_end(int(epoch) - 1, dict(zip(EPOCH_NAMES, values, strict=True)))
    return folder


def override(config: Config, changes: dict[str, Any]) -> Config:
    """A copy of `config` with dotted keys replaced, validated like params.yaml."""
    tree = config.model_dump()
    for dotted, value in changes.items():
        set_dotted(tree, dotted, value)
    return Config.model_validate(tree)


def foreground() -> None:
    """Ctrl-C's default action, as a shell gives its foreground job: a job started in the
    background (CI runners do that) inherits SIGINT ignored, and Python then keeps ignoring it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def write_gz(path: Path, content: bytes) -> Path:
    path.write_bytes(gzip.compress(content, mtime=0))
    return path


# IDX element types (http://yann.lecun.com/exdb/mnist/), written here independently of the
# project's reader so that the tests check it against the format, not against itself.
IDX_TYPE_CODES = {"u1": 0x08, "i1": 0x09, "i2": 0x0B, "i4": 0x0C, "f4": 0x0D, "f8": 0x0E}


def encode_idx(array: np.ndarray) -> bytes:
    """IDX bytes of an array: a big-endian header (0, type code, rank, sizes), then the data."""
    kind = f"{array.dtype.kind}{array.dtype.itemsize}"
    header = struct.pack(f">HBB{array.ndim}I", 0, IDX_TYPE_CODES[kind], array.ndim, *array.shape)
    return header + np.ascontiguousarray(array, dtype=array.dtype.newbyteorder(">")).tobytes()


def synthetic_split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`n` random 28x28 uint8 images with labels cycling through the ten digits."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    return images, labels


def write_raw(folder: Path, train: int = 200, test: int = 50) -> Path:
    """A data/raw look-alike: the four MNIST file names holding synthetic images."""
    folder.mkdir(parents=True)
    for split, n, seed in (("train", train, 1), ("test", test, 2)):
        images, labels = synthetic_split(n, seed)
        images_name, labels_name = SPLIT_FILES[split]
        write_gz(folder / images_name, encode_idx(images))
        write_gz(folder / labels_name, encode_idx(labels))
    return folder


def file_table(raw_dir: Path) -> dict[str, MnistFile]:
    """The download stage's table of MNIST files (name, sha256, size) for the synthetic files in
    raw_dir, to stand for the real table, which names MNIST's."""
    table = {}
    for path in sorted(raw_dir.iterdir()):
        content = gzip.decompress(path.read_bytes())
        table[path.name] = MnistFile(path.name, hashlib.sha256(content).hexdigest(), len(content))
    return table


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


def real_mnist() -> Path:
    """The folder of the real MNIST files (resolved); real-data tests skip without it."""
    mirror = os.environ.get("MNIST_MIRROR")
    if not mirror:
        pytest.skip("MNIST_MIRROR is not set: no real MNIST to run on (CI sets it)")
    return Path(mirror).resolve()


@pytest.fixture
def mnist_mirror() -> Path:
    """The real MNIST files; real-data tests skip without them."""
    return real_mnist()


@pytest.fixture(scope="session")
def built_pipeline(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    """The real pipeline, download to evaluate, run once per session by `dvc repro` on real
    MNIST with the shrunk params (workspace.SHRUNK). Tests read it, and change only copies of
    it (the `pipeline` fixture): building it is the expensive part. Under pytest-xdist the
    first worker to need it builds it and the others wait for it and share it.

    Its history: the copied tree, then the shrunk params (the stages ran at that commit, HEAD~1),
    then dvc.lock. `printed` is what that `dvc repro` printed."""
    from .workspace import SHRUNK, STAGES, Repo

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


def require_stack_binaries() -> None:
    """Skip (outside CI) or fail (in CI, which must install them) without the Debian binaries."""
    from vae_mnist.common.errors import StackError
    from vae_mnist_tools.stack import binaries

    try:
        binaries.postgres_bindir()
        binaries.ceph_binaries()
    except StackError as error:
        if os.environ.get("CI"):
            pytest.fail(f"CI must install the stack's packages: {error}")
        pytest.skip(str(error))


def stack_folder() -> Path:
    """A new short folder under the system's temporary folder, which the `postgres` user can
    pass through (pytest's own temporary folders are private to this user)."""
    return Path(tempfile.mkdtemp(prefix="vae-stack-"))


def processes_of(folder: Path) -> list[str]:
    """Every live process whose command line, working directory or environment names `folder`,
    as "PID command line": what the stack may have left running."""
    text = str(folder)
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(proc / "cwd")
            environ = (proc / "environ").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if text in cmdline or cwd == text or cwd.startswith(text + "/") or text in environ:
            found.append(f"{proc.name} {cmdline.strip()}")
    return found


@contextmanager
def throwaway_stack(request: pytest.FixtureRequest, project: Any = None) -> Iterator[Stack]:
    """A team stack on free ports (governing `project`'s names, by default the project's own);
    stopped by PID at the end, and then no process of it may be left. Its folder (logs) stays
    when a test failed."""
    from vae_mnist_tools.stack.control import down, up

    require_stack_binaries()
    folder = stack_folder()
    try:
        yield up(folder, ports=dict.fromkeys(DEFAULT_PORTS, 0), project=project)
    finally:
        down(folder)
        left = processes_of(folder)
        if not left and not request.session.testsfailed:
            shutil.rmtree(folder)
        assert not left, f"the stack left processes running: {left}"


@pytest.fixture(scope="session")
def team_stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    """The team stack, started once per session and shared by every test that needs one."""
    with throwaway_stack(request) as stack:
        yield stack


def log_in(stack: Stack, monkeypatch: pytest.MonkeyPatch, user: str = "admin") -> None:
    """This process's MLflow clients talk to the stack's server as `user` (over its TLS)."""
    for key, value in stack.client_env(user).items():
        monkeypatch.setenv(key, value)
