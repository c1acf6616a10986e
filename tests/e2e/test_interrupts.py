"""Faults under a real `dvc repro` on real MNIST: Ctrl-C and SIGTERM in each working stage, two
repros at once, a damaged out. Each time: one clear message, no half-written file in an out or
in DVC's cache, no staging folder or temporary file left, no MLflow run left RUNNING, and the
workspace back to its last good state with `dvc checkout` or a `dvc repro` that completes.

The tests share one copy of the session's built pipeline (conftest.built_pipeline), its training
set to two epochs, and run in file order; each leaves it up to date for the next.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import mlflow
import pytest

from tests.support.data import foreground
from tests.support.workspace import BIN, Repo
from vae_mnist.data.arrays import split_files

WAIT_S = 600  # for a stage to reach the point where the test interrupts it


SIGNALS = [signal.SIGINT, signal.SIGTERM]


@pytest.fixture(scope="module")
def repo(built_pipeline: Repo, tmp_path_factory: pytest.TempPathFactory) -> Repo:
    root = tmp_path_factory.mktemp("interrupts")
    repo = built_pipeline.copy(root / "repo")
    repo.set_params({"train.epochs": 2, "evaluate.iwae_samples": 20})
    repo.commit("two epochs: not trained with them yet")
    # Every temporary file of the stages (MLflow's, Keras', Python's) lands here, to be checked.
    repo.env.update(TMPDIR=str(root / "tmp"), PYTHONUNBUFFERED="1")
    (root / "tmp").mkdir()
    return repo


def store(repo: Repo) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(f"sqlite:///{repo.root / 'mlflow.db'}")


def stage_runs(repo: Repo, stage: str) -> list[mlflow.entities.Run]:
    """The stage's MLflow runs, newest first."""
    client = store(repo)
    experiment = client.get_experiment_by_name("vae-mnist")
    return client.search_runs(
        [experiment.experiment_id],
        f"tags.stage = '{stage}'",
        order_by=["attributes.start_time DESC"],
    )


def cache_files(repo: Repo) -> set[str]:
    cache = repo.root / ".dvc" / "cache"
    return {str(p.relative_to(cache)) for p in cache.rglob("*") if p.is_file()}


def strays(repo: Repo) -> list[str]:
    """Staging folders and files of the atomic writers, anywhere in the workspace, and anything
    left in the stages' temporary folder."""
    found = [
        str(p.relative_to(repo.root))
        for p in repo.root.rglob(".*")
        if ".tmp" in p.name and not {".git", ".dvc"} & set(p.relative_to(repo.root).parts)
    ]
    # TensorFlow's autograph imports the modules it generates from the temporary folder, and
    # Python caches their bytecode there: a cache of TensorFlow's, not a file a stage left.
    temporary = Path(repo.env["TMPDIR"])
    autograph = "__pycache__/__autograph_generated_file"
    left = [str(p.relative_to(temporary)) for p in temporary.rglob("*")]
    return found + [n for n in left if n != "__pycache__" and not n.startswith(autograph)]


@contextmanager
def running(repo: Repo, *args: str) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """`dvc <args>` started in its own process group, as a shell starts a foreground job (Ctrl-C
    reaches every process in it); its output goes to a file the test can read as it grows."""
    output = repo.root.parent / "dvc-output.txt"
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [str(BIN / "dvc"), *args], cwd=repo.root, env=repo.env, stdout=sink,
            stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=foreground,
        )  # fmt: skip
        try:
            yield process, output
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_for(condition: Callable[[], bool], what: str, output: Path) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"never saw {what}:\n{output.read_text()}"
        time.sleep(0.2)


def printed(output: Path, pattern: str) -> Callable[[], bool]:
    return lambda: re.search(pattern, output.read_text(errors="replace")) is not None


def interrupt(
    repo: Repo, signum: signal.Signals, args: list[str], ready: Callable[[Path], Callable[[], bool]]
) -> str:
    """Run `dvc <args>`, send `signum` to its process group once `ready`, and return what it
    printed, after checking that it failed, cleanly, and added nothing to DVC's cache."""
    cached = cache_files(repo)
    with running(repo, *args) as (process, output):
        wait_for(ready(output), "the point to interrupt at", output)
        os.killpg(process.pid, signum)
        process.wait(timeout=120)
        # DVC dies of SIGTERM at once; the stage it ran still has its clean-up to finish
        wait_for(lambda: not group_alive(process.pid), "every process of the group exit", output)
    text = output.read_text()
    assert process.returncode != 0, text
    assert f"interrupted ({signum.name})" in text and "Traceback" not in text, text
    assert strays(repo) == []
    assert cache_files(repo) == cached  # DVC commits outs only after a stage succeeds
    return text


def assert_killed(repo: Repo, stage: str) -> None:
    assert stage_runs(repo, stage)[0].info.status == "KILLED"
    running_runs = [r for r in stage_runs(repo, stage) if r.info.status == "RUNNING"]
    assert running_runs == []


class SlowMirror(ThreadingHTTPServer):
    """The real MNIST files over HTTP at a trickle, so that a download can be interrupted."""

    daemon_threads = True

    def __init__(self, folder: Path) -> None:
        super().__init__(("127.0.0.1", 0), SlowHandler)
        self.folder = folder
        self.sending = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"


class SlowHandler(BaseHTTPRequestHandler):
    server: SlowMirror

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        body = (self.server.folder / self.path.lstrip("/")).read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.server.sending.set()
        try:
            for start in range(0, len(body), 16 << 10):
                self.wfile.write(body[start : start + (16 << 10)])
                time.sleep(0.1)
        except OSError:
            pass  # the client went away


STALE_WHEN_DAMAGED = {
    "data/processed/train_images.npy": {"preprocess", "train", "evaluate"},
    "models/vae.keras": {"train", "evaluate"},
}


@pytest.mark.parametrize("signum", SIGNALS, ids=lambda s: s.name)
def test_interrupted_download_leaves_nothing_and_checkout_restores_it(
    repo: Repo, signum: signal.Signals
) -> None:
    mirror = SlowMirror(Path(repo.env["MNIST_MIRROR"]))
    threading.Thread(target=mirror.serve_forever, daemon=True).start()
    good_mirror = repo.env["MNIST_MIRROR"]
    repo.env["MNIST_MIRROR"] = mirror.url
    try:
        interrupt(repo, signum, ["repro", "--force", "--single-item", "download"],
                  lambda output: mirror.sending.is_set)  # fmt: skip
    finally:
        repo.env["MNIST_MIRROR"] = good_mirror
        mirror.shutdown()
    assert not (repo.root / "data" / "raw").exists()
    assert_killed(repo, "download")
    assert repo.status("download") == {"download": [{"changed outs": {"data/raw": "deleted"}}]}
    repo.dvc("checkout", "data/raw")
    assert repo.status("preprocess") == {}


@pytest.mark.parametrize("signum", SIGNALS, ids=lambda s: s.name)
def test_interrupted_training_registers_nothing_and_the_next_repro_completes(
    repo: Repo, signum: signal.Signals
) -> None:
    def versions() -> list[str]:
        return [v.version for v in store(repo).search_model_versions("name = 'vae-mnist'")]

    registered = versions()
    # first as `make repro` runs it (not trained with these params yet), then retraining
    trained = repo.status("train") == {}
    args = ["repro", "--force", "--single-item", "train"] if trained else ["repro"]
    text = interrupt(repo, signum, args, lambda output: printed(output, r"Epoch 2/2"))
    assert "Running stage 'train'" in text and "Running stage 'evaluate'" not in text
    assert not (repo.root / "models" / "vae.keras").exists()
    assert not (repo.root / "reports" / "training").exists()
    assert_killed(repo, "train")
    assert versions() == registered
    # Once trained, the same stage with the same inputs is in DVC's run cache: the next repro
    # checks its outs out of the cache rather than training again.
    assert repo.repro() == ([] if trained else ["train", "evaluate"])
    assert (repo.root / "models" / "vae.keras").is_file()
    assert repo.stale() == set()
    assert strays(repo) == []


@pytest.mark.parametrize("signum", SIGNALS, ids=lambda s: s.name)
def test_interrupted_evaluation_leaves_no_report_and_the_next_repro_completes(
    repo: Repo, signum: signal.Signals
) -> None:
    def evaluating(output: Path) -> Callable[[], bool]:
        return lambda: any(r.info.status == "RUNNING" for r in stage_runs(repo, "evaluate"))

    interrupt(repo, signum, ["repro", "--force", "--single-item", "evaluate"], evaluating)
    assert not (repo.root / "reports" / "evaluation").exists()
    assert_killed(repo, "evaluate")
    assert repo.repro() == []  # evaluated before with the same inputs: from DVC's run cache
    assert (repo.root / "reports" / "evaluation" / "metrics.json").is_file()
    assert repo.stale() == set()


def test_a_second_repro_stops_on_dvcs_lock_and_the_first_completes(repo: Repo) -> None:
    before = repo.digests()
    with running(repo, "repro", "--force", "--single-item", "train") as (first, output):
        wait_for(printed(output, r"Epoch 1/2"), "training", output)
        second = repo.dvc("repro", check=False)
        assert first.poll() is None  # the second ran while the first held the lock
        first.wait(timeout=WAIT_S)
    assert second.returncode != 0
    # DVC's read-write lock on the outs the first holds (its repo lock is held only briefly)
    (refusal,) = [line for line in second.stderr.splitlines() if line.startswith("ERROR")]
    assert refusal.endswith("is busy, it is being blocked by:"), second.stderr
    assert f"(PID {first.pid}): " in second.stderr  # the first repro, named
    assert "Running stage" not in second.stdout
    assert first.returncode == 0, output.read_text()
    assert repo.digests() == before  # the same model, bit for bit: nothing corrupted
    assert repo.stale() == set()


@pytest.mark.parametrize(
    ("damaged", "stage"),
    [("data/processed/train_images.npy", "train"), ("models/vae.keras", "evaluate")],
)
def test_a_damaged_out_fails_the_stage_that_reads_it_and_checkout_restores_it(
    repo: Repo, damaged: str, stage: str
) -> None:
    path = repo.root / damaged
    assert path == split_files(repo.root / "data" / "processed", "train")[0] or stage == "evaluate"
    content = bytearray(path.read_bytes())
    content[len(content) // 2] ^= 0xFF
    path.write_bytes(bytes(content))
    # the stage that wrote it and every stage that reads it
    assert repo.stale() == STALE_WHEN_DAMAGED[damaged]

    result = repo.dvc("repro", "--single-item", stage, check=False)
    assert result.returncode != 0
    ours = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(ours) == 1 and ours[0].startswith(f"error: {damaged}: "), result.stderr
    assert "Traceback" not in result.stdout + result.stderr

    # plain `dvc checkout` refuses to overwrite a changed file that is not in the cache
    refused = repo.dvc("checkout", check=False)
    assert refused.returncode != 0 and "--force" in refused.stderr
    repo.dvc("checkout", "--force")
    assert repo.stale() == set()
    assert repo.repro() == []
