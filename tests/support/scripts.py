"""A stage's entry script run as DVC runs it (its own process, the caller's environment less
DVC's and MLflow's variables), and the one line it must fail with."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from tests.support.paths import REPO
from tests.support.workspace import BIN


def stage_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DVC_", "MLFLOW_"))}
    return {**env, "TF_CPP_MIN_LOG_LEVEL": "2", **extra}


def run_script(
    folder: Path, script: str, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "python"), str(REPO / "pipeline" / script), *args],
        cwd=folder, env=stage_env(**env), capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def printed(stderr: str) -> list[str]:
    """What a stage printed on stderr beyond MLflow's INFO lines (creating a new store's tables)."""
    return [line for line in stderr.splitlines() if not re.match(r"[\d/]+ [\d:]+ INFO ", line)]


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single line a failed stage prints: nothing else on stderr, no traceback."""
    assert result.returncode != 0, result.stdout + result.stderr
    lines = printed(result.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]
