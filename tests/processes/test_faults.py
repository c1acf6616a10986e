"""Faults injected under one stage at a time, each in its real script: a signal, a locked or
unwritable store, a full disk, a damaged out; each ends in one line on stderr and leaves no
partial out. The same under a real `dvc repro`: tests/e2e/test_interrupts.py."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow
import pytest
import yaml

from tests.support.configs import override
from tests.support.data import foreground
from tests.support.faults import (
    SMALL,
    runs_of,
)
from tests.support.paths import REPO
from tests.support.scripts import one_error_line, printed, run_script, stage_env
from vae_mnist.common.config import Config
from vae_mnist.common.errors import TrackingError
from vae_mnist.common.pipeline import PIPELINE_FILE
from vae_mnist.data.arrays import STATS_FILE
from vae_mnist.stages.preprocess import preprocess
from vae_mnist.tracking.runs import stage_run

BIN = Path(sys.executable).parent


def stage_dir(tmp_path: Path, config: Config) -> Path:
    """A folder to run a stage's entry script in, as its project: its params.yaml and dvc.yaml
    (where the stages' params are listed), and so its own default store, mlflow.db and
    mlartifacts/."""
    folder = tmp_path / "work"
    folder.mkdir()
    shutil.copy(REPO / PIPELINE_FILE, folder)
    tree = override(config, SMALL).model_dump(mode="json")
    (folder / "params.yaml").write_text(yaml.safe_dump(tree, sort_keys=False))
    return folder


def leftovers(folder: Path) -> list[str]:
    """Staging files and folders the atomic writers would leave behind on a failure."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*") if ".tmp" in p.name)


@contextmanager
def tmpfs(path: Path, options: str) -> Iterator[Path]:
    """A tmpfs mounted at `path` for the test (as root); skipped where the machine refuses."""
    path.mkdir(parents=True, exist_ok=True)
    mount = ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)]
    result = subprocess.run(mount, capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip() or result.returncode}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "--lazy", str(path)], check=True)


@contextmanager
def read_only(path: Path) -> Iterator[Path]:
    """A folder that this process cannot write: a read-only tmpfs for root, whom permissions do
    not stop; a chmod for anyone else."""
    if os.geteuid() == 0:
        with tmpfs(path, "ro,size=1m"):
            yield path
        return
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o555)
    try:
        yield path
    finally:
        path.chmod(0o755)


SLOW_STAGE = """
import time
from pathlib import Path
from vae_mnist.common.errors import reports_errors
from vae_mnist.common.outputs import atomic_directory
from vae_mnist.tracking.runs import stage_run

@reports_errors
def main():
    with stage_run("slow", "faults"), atomic_directory(Path("out")) as staging:
        (staging / "half-written").write_bytes(b"x")
        print("working", flush=True)
        time.sleep(120)

main()
"""


# The signal arrives while SQLAlchemy is inside a write transaction on the sqlite store: an
# interruption raised there would leave this process's own connection holding the write lock, and
# ending the run KILLED would wait on it for MLflow's busy timeout, then fail "database is locked".
MID_TRANSACTION = """
import os, signal, sys, time
import sqlalchemy
from vae_mnist.common.errors import reports_errors
from vae_mnist.tracking.runs import stage_run

signum = signal.Signals[sys.argv[1]]

@sqlalchemy.event.listens_for(sqlalchemy.engine.Engine, "after_cursor_execute")
def interrupt(connection, cursor, statement, *args):
    if statement.startswith("INSERT INTO params"):
        os.kill(os.getpid(), signum)  # handled at the next bytecode: inside SQLAlchemy

@reports_errors
def main():
    with stage_run("slow", "faults", {"a": 1, "b": 2}):
        print("working", flush=True)
        time.sleep(120)

main()
"""


# The signal arrives while TensorFlow traces a function into a graph (here: from inside the traced
# Python body, a second before the trace ends). Raised there, an interruption can come out of
# TensorFlow's C++ bindings as a SystemError with a traceback; it must wait for the trace to end.
MID_TRACE = """
import os, signal, sys, time
from vae_mnist.common.tensorflow_env import quiet_tensorflow
quiet_tensorflow()
import tensorflow as tf
from vae_mnist.common.errors import reports_errors

@tf.function
def traced(x):
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(1)
    print("traced to the end", flush=True)
    return x + 1

@reports_errors
def main():
    traced(tf.constant(1.0))
    time.sleep(120)

main()
"""


# The signal arrives in the middle of an import (TensorFlow's C++ imports modules while it flattens
# a function's inputs): raised there, it can come out of the bindings as a SystemError, and it
# would leave the module half-initialised; it must wait for the import to end.
MID_IMPORT = """
import os, signal, time
os.kill(os.getpid(), signal.SIGTERM)
time.sleep(1)
print("imported to the end", flush=True)
"""


IMPORTER = """
import time
from vae_mnist.common.errors import reports_errors

@reports_errors
def main():
    import mid_import
    time.sleep(120)

main()
"""


HOLD_LOCK = """
import sqlite3, sys, time
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
connection.execute("COMMIT")
"""


@contextmanager
def locked_store(database: Path, seconds: float) -> Iterator[subprocess.Popen[str]]:
    """Another writer holding the sqlite store's write lock for `seconds`."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(database), str(seconds)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline() == "locked\n"
        yield holder
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_ends_the_run_killed_with_no_staging_left(
    tmp_path: Path, signum: signal.Signals, code: int
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    stage = subprocess.Popen(
        [str(BIN / "python"), "-c", SLOW_STAGE], cwd=tmp_path,
        env=stage_env(MLFLOW_TRACKING_URI=uri), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, preexec_fn=foreground,
    )  # fmt: skip
    assert stage.stdout.readline() == "working\n"
    stage.send_signal(signum)
    _, stderr = stage.communicate(timeout=60)
    assert stage.returncode == code
    assert printed(stderr) == [f"interrupted ({signum.name})"]
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []
    (run,) = runs_of(uri, "faults")
    assert run.info.status == "KILLED"


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_inside_a_store_transaction_waits_for_it_to_commit(
    tmp_path: Path, signum: signal.Signals, code: int
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    stage = subprocess.run(
        [str(BIN / "python"), "-c", MID_TRANSACTION, signum.name], cwd=tmp_path,
        env=stage_env(MLFLOW_TRACKING_URI=uri), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert stage.returncode == code, stage.stderr
    assert printed(stage.stderr) == [f"interrupted ({signum.name})"]
    (run,) = runs_of(uri, "faults")
    assert run.info.status == "KILLED"
    assert run.data.params == {"a": "1", "b": "2"}


def test_a_signal_while_tensorflow_traces_a_function_waits_for_the_trace(tmp_path: Path) -> None:
    stage = subprocess.run(
        [str(BIN / "python"), "-c", MID_TRACE], cwd=tmp_path, env=stage_env(),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert stage.returncode == 143, stage.stderr
    assert stage.stdout == "traced to the end\n"
    assert printed(stage.stderr) == ["interrupted (SIGTERM)"]


def test_a_signal_during_an_import_waits_for_the_import(tmp_path: Path) -> None:
    (tmp_path / "mid_import.py").write_text(MID_IMPORT)
    stage = subprocess.run(
        [str(BIN / "python"), "-c", IMPORTER], cwd=tmp_path,
        env=stage_env(),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert stage.returncode == 143, stage.stderr
    assert stage.stdout == "imported to the end\n"
    assert printed(stage.stderr) == ["interrupted (SIGTERM)"]


def test_a_store_locked_for_a_few_seconds_is_waited_for(
    config: Config, raw_dir: Path, tmp_path: Path, mlflow_store: str
) -> None:
    small = override(config, SMALL)
    preprocess(small, raw_dir, tmp_path / "first")  # the store exists, with its experiment
    with locked_store(tmp_path / "mlflow.db", 3) as holder:
        preprocess(small, raw_dir, tmp_path / "processed")
        assert holder.poll() is not None  # the lock was held until the holder was done
    assert (tmp_path / "processed" / STATS_FILE).is_file()
    assert [r.info.status for r in runs_of(mlflow_store, small.mlflow.experiment_name)] == [
        "FINISHED", "FINISHED",
    ]  # fmt: skip


def test_a_store_locked_past_mlflows_wait_fails_in_one_line(
    config: Config, raw_dir: Path, tmp_path: Path
) -> None:
    folder = stage_dir(tmp_path, config)
    assert run_script(folder, "preprocess.py", str(raw_dir), "first").returncode == 0
    with locked_store(folder / "mlflow.db", 120):
        result = run_script(folder, "preprocess.py", str(raw_dir), "processed")
    line = one_error_line(result)
    assert line.startswith(f"error: MLflow store sqlite:///{folder}/mlflow.db ")
    assert "database is locked" in line and "another process is writing to it" in line
    assert not (folder / "processed").exists() and leftovers(folder) == []


def test_a_lock_that_outlasts_mlflows_wait_mid_stage_is_one_error_and_the_run_fails(
    mlflow_store: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # the lock is held past MLflow's 20 s wait for the write, and let go (killed) when the write
    # fails, so that the run can then be ended
    with (
        pytest.raises(TrackingError) as raised,
        stage_run("locked", "faults"),
        locked_store(tmp_path / "mlflow.db", 120),
    ):
        mlflow.log_metric("written", 1.0)
    assert "database is locked" in str(raised.value)
    assert "Traceback" not in capfd.readouterr().err  # MLflow's logged copy of the error
    (run,) = runs_of(mlflow_store, "faults")
    assert run.info.status == "FAILED"


def test_a_store_in_an_unwritable_folder_fails_in_one_line(
    config: Config, raw_dir: Path, tmp_path: Path
) -> None:
    folder = stage_dir(tmp_path, config)
    with read_only(tmp_path / "store") as store:
        uri = f"sqlite:///{store}/mlflow.db"
        result = run_script(folder, "preprocess.py", str(raw_dir), "processed",
                            MLFLOW_TRACKING_URI=uri)  # fmt: skip
    line = one_error_line(result)
    assert line.startswith(f"error: MLflow store {uri} ")
    assert not (folder / "processed").exists() and leftovers(folder) == []


def test_an_unwritable_artifact_folder_fails_in_one_line_and_the_run_fails(
    config: Config, raw_dir: Path, tmp_path: Path
) -> None:
    folder = stage_dir(tmp_path, config)
    with read_only(folder / "mlartifacts") as artifacts:
        result = run_script(folder, "preprocess.py", str(raw_dir), "processed")
    line = one_error_line(result)
    assert line.startswith(f"error: {artifacts}/")
    assert line.endswith(("Read-only file system", "Permission denied"))
    (run,) = runs_of(f"sqlite:///{folder / 'mlflow.db'}", "vae-mnist")
    assert run.info.status == "FAILED"
    assert leftovers(folder) == []


def test_a_full_disk_fails_in_one_line_and_leaves_no_partial_out(
    config: Config, raw_dir: Path, tmp_path: Path
) -> None:
    folder = stage_dir(tmp_path, config)
    with tmpfs(folder / "data", "size=256k") as data:  # the train split alone is 564 kB
        result = run_script(folder, "preprocess.py", str(raw_dir), "data/processed")
        line = one_error_line(result)
        assert line.startswith("error: data/") and line.endswith(": No space left on device")
        assert list(data.iterdir()) == []
    (run,) = runs_of(f"sqlite:///{folder / 'mlflow.db'}", "vae-mnist")
    assert run.info.status == "FAILED"
