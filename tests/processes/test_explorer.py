"""`vae-mnist explore` as a user starts it, on two tiny registered versions: it serves its page
and reports errors in the terminal too; no store, or one that does not answer, is one line. The
endpoints in process: tests/unit/apps/test_explorer.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.paths import REPO
from tests.support.registered import Store, explorer
from vae_mnist.common.ports import free_port


def run_cli(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`vae-mnist explore` run as a user runs it, from `cwd`."""
    return subprocess.run(
        [sys.executable, "-m", "vae_mnist", "explore", "--port", str(free_port()), *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO / "src"), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_without_a_store_the_explorer_says_so_in_one_line_and_creates_none(
    tmp_path: Path,
) -> None:
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")  # a project with no runs yet
    (tmp_path / "params.yaml").write_bytes((REPO / "params.yaml").read_bytes())
    env = {key: value for key, value in os.environ.items() if key != "MLFLOW_TRACKING_URI"}
    result = subprocess.run(
        [sys.executable, "-m", "vae_mnist", "explore"],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(REPO / "src")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"error: no MLflow store at {tmp_path / 'mlflow.db'}: run the pipeline (make repro) "
        "first, or point MLFLOW_TRACKING_URI at the store that has the models"
    )
    assert not (tmp_path / "mlflow.db").exists()


def test_a_store_that_does_not_answer_or_has_no_such_version_is_one_line(
    store: Store, tmp_path: Path
) -> None:
    (tmp_path / "params.yaml").write_bytes((REPO / "params.yaml").read_bytes())
    down = run_cli(tmp_path, {"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}"})
    assert down.returncode == 1 and len(down.stderr.strip().splitlines()) == 1, down.stderr
    assert "cannot be used" in down.stderr and "Traceback" not in down.stderr

    result = run_cli(tmp_path, {"MLFLOW_TRACKING_URI": store.uri}, "--version", "12")
    assert result.returncode == 1
    assert result.stderr.strip() == "error: vae-mnist has no version 12 (it has 2, 1)"


def test_the_explorer_serves_its_page_and_reports_errors_in_the_terminal_too(
    store: Store,
) -> None:
    import requests

    with explorer(store, "--version", "1") as running:
        page = requests.get(running.url, timeout=10)
        assert page.status_code == 200 and "/static/explorer.js" in page.text
        script = requests.get(f"{running.url}static/explorer.js", timeout=10)
        assert script.status_code == 200 and "/api/decode" in script.text
        assert requests.get(f"{running.url}api/versions", timeout=10).json()["default"] == "1"
        missing = requests.get(f"{running.url}api/versions/42", timeout=10)
        assert missing.json()["error"] == "vae-mnist has no version 42 (it has 2, 1)"
    printed = "".join(running.lines)
    assert "ERROR: vae-mnist has no version 42 (it has 2, 1)\n" in printed
    assert "Traceback" not in printed
