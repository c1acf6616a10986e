"""MNIST_MIRROR through the real download script: a user's value and its credentials, never
printed. The mirrors in process: tests/unit/data/test_mirrors.py."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.mirrors import SECRET, USER
from tests.support.paths import REPO
from vae_mnist.common.ports import free_port
from vae_mnist.data.mirrors import (
    ALLOW_HTTP_ENV,
    MIRROR_ENV,
)


def run_stage(cwd: Path, mirror: str) -> subprocess.CompletedProcess[str]:
    shutil.copy(REPO / "params.yaml", cwd / "params.yaml")
    environment = {k: v for k, v in os.environ.items() if k != ALLOW_HTTP_ENV}
    environment[MIRROR_ENV] = mirror
    environment["MLFLOW_TRACKING_URI"] = f"sqlite:///{cwd / 'mlflow.db'}"
    return subprocess.run(
        [sys.executable, str(REPO / "pipeline" / "download.py"), "data/raw"],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )


def only_error_line(result: subprocess.CompletedProcess[str], cwd: Path) -> str:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    out = cwd / "data" / "raw"
    assert not out.exists()
    assert not out.parent.exists() or list(out.parent.iterdir()) == []  # no staging left
    return errors[0]


@pytest.mark.parametrize(
    ("mirror", "says"),
    [
        ("{tmp}/gone", "{tmp}/gone: no such directory"),
        ("{tmp}/params.yaml", "{tmp}/params.yaml: a file, not a directory"),
        ("ftp://ftp.example.org/mnist/", "unsupported scheme ftp:// (use a directory, file://"),
        ("http://mirror.example.org/mnist/", f"or set {ALLOW_HTTP_ENV}=1 to allow it"),
    ],
    ids=["missing", "file", "ftp", "http-remote"],
)
def test_cli_refuses_a_bad_mirror_in_one_line(tmp_path: Path, mirror: str, says: str) -> None:
    result = run_stage(tmp_path, mirror.format(tmp=tmp_path))
    line = only_error_line(result, tmp_path)
    assert line.startswith(f"error: {MIRROR_ENV}=")
    assert says.format(tmp=tmp_path) in line


def test_cli_never_prints_or_logs_the_credentials_of_a_dead_mirror(tmp_path: Path) -> None:
    port = free_port()
    result = run_stage(tmp_path, f"http://{USER}:{SECRET}@127.0.0.1:{port}/mnist/")
    line = only_error_line(result, tmp_path)
    assert line.startswith("error: train-images-idx3-ubyte.gz: no mirror gave a good copy: ")
    assert f"http://127.0.0.1:{port}/mnist/train-images-idx3-ubyte.gz: connection refused" in line
    for text in (result.stdout, result.stderr):
        assert SECRET not in text and USER not in text
    assert SECRET.encode() not in (tmp_path / "mlflow.db").read_bytes()  # the failed run's params
