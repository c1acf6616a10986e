"""The documentation site built once, and the pages' runnable blocks: what the site's tests,
in process, on the pipeline and in Chromium, share."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.support.paths import REPO
from tests.support.workspace import BIN, Repo

DOCS = REPO / "docs"


RUNNABLE = "<!-- runnable -->"  # on the line before a fence: the block runs in a test


# In a copy of the repository `make` would build the copy's own .venv; its blocks use this one.
PRELUDE = 'set -euo pipefail\nmake() { command make -o env "$@"; }\n'


def build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run(
        [str(BIN / "mkdocs"), "build", "--strict", "-f", str(config), "-d", str(site)],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("site") / "site"
    built = build(REPO / "mkdocs.yml", folder)
    assert built.returncode == 0, built.stderr
    return folder


def runnable_blocks(text: str) -> list[tuple[str, str]]:
    """(language, code) of each fenced block whose line before is the RUNNABLE mark."""
    return re.findall(rf"{re.escape(RUNNABLE)}\n```(\w+)\n(.*?)\n```", text, re.S)


def run_block(repo: Repo, language: str, code: str) -> subprocess.CompletedProcess[str]:
    """A shell block through bash (`make` without setting up .venv), a Python block through the
    environment's Python, in the repository's root."""
    command = (["bash", "-c", PRELUDE + code] if language in ("bash", "sh")
               else [str(BIN / "python"), "-c", code])  # fmt: skip
    return repo.run(*command, check=False)
