"""The CI recipes that post `make report` on a pull request (GitHub Actions) or a merge request
(GitLab CI): no CI service runs here, so each is held against its service's schema
(check-jsonschema's copies of SchemaStore's) and the GitHub workflow through zizmor's audits; a
broken copy of each fails."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.paths import REPO
from tests.support.workspace import BIN

GITHUB = REPO / ".github" / "workflows" / "report.yml"


GITLAB = REPO / ".gitlab-ci.yml"


SCHEMAS = {GITHUB: "vendor.github-workflows", GITLAB: "vendor.gitlab-ci"}


def checked(path: Path, schema: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", schema, str(path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def audited(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "zizmor"), "--offline", "--no-progress", str(path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize("path", list(SCHEMAS), ids=lambda p: p.name)
def test_each_workflow_is_valid_for_its_service(path: Path) -> None:
    result = checked(path, SCHEMAS[path])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", list(SCHEMAS), ids=lambda p: p.name)
def test_a_broken_workflow_is_refused(path: Path, tmp_path: Path) -> None:
    broken = tmp_path / path.name
    tree = yaml.safe_load(path.read_text())
    job = tree["jobs"]["report"] if path == GITHUB else tree["report"]
    job["steps" if path == GITHUB else "script"] = {"not": "a list"}
    broken.write_text(yaml.safe_dump(tree))
    assert checked(broken, SCHEMAS[path]).returncode != 0


def test_the_github_workflow_passes_zizmor_s_audits(tmp_path: Path) -> None:
    result = audited(GITHUB)
    assert result.returncode == 0, result.stdout + result.stderr
    unpinned = tmp_path / GITHUB.name  # an action by tag, not by commit: what the audit catches
    unpinned.write_text(re.sub(r"@[0-9a-f]{40}", "@v7", GITHUB.read_text(), count=1))
    assert audited(unpinned).returncode != 0


@pytest.mark.parametrize("path", list(SCHEMAS), ids=lambda p: p.name)
def test_each_workflow_runs_the_pipeline_and_posts_make_report(path: Path) -> None:
    text = path.read_text()
    assert text.count("dvc exp run -n") == 2  # the base and the head, each an experiment here
    assert "make report BASE=" in text and "reports/compare/report.md" in text
    targets = subprocess.run(["make", "-s", "help"], cwd=REPO, capture_output=True, text=True)
    assert "make report " in targets.stdout and "make env " in targets.stdout
