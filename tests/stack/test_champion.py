"""The champion rule under a race on the team stack's server: two evaluations at once leave one
`champion`. The rule and the alias: tests/unit/tracking/test_champion.py."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import mlflow
import pytest

from tests.support.champion import (
    MODEL,
    champion,
    train_and_register,
)
from tests.support.paths import REPO
from tests.support.stack import log_in

EVALUATE_AT_ONCE = """
import sys, time
from pathlib import Path
from vae_mnist.tracking.runs import stage_run
from tests.support.champion import link
go, sha, score, figures = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3]), Path(sys.argv[4])
with stage_run("evaluate", "lineage"):
    (go.parent / f"ready-{sha}").touch()
    while not go.exists():  # every evaluation is set up and waits: then all decide at once
        time.sleep(0.005)
    link(sys.argv[5], sha, {"test/neg_elbo": score}, figures)
"""


def test_evaluations_at_once_on_a_server_leave_the_best_champion(
    team_stack, figures: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Several machines evaluate at once against one tracking server: no lock serialises them,
    and whatever the interleaving the alias must end on the lowest test -ELBO."""
    log_in(team_stack, monkeypatch)
    client = mlflow.MlflowClient(team_stack.tracking_uri)
    for attempt, order in enumerate(([3, 5, 0, 4, 1, 2], [5, 4, 3, 2, 1, 0])):
        model = f"{MODEL}-race-{uuid.uuid4().hex[:12]}"  # the stack outlives this test
        scores = {f"{attempt}{i}" * 32: 140.0 + rank for i, rank in enumerate(order)}
        versions = {sha: train_and_register(client, sha, model) for sha in scores}
        go = tmp_path / f"round-{attempt}" / "go"
        go.parent.mkdir()
        env = {**os.environ, **team_stack.client_env()}
        command = [sys.executable, "-c", EVALUATE_AT_ONCE, str(go)]
        pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True, "cwd": REPO}
        evaluations = [
            subprocess.Popen([*command, sha, str(score), str(figures), model], env=env, **pipes)
            for sha, score in scores.items()
        ]
        deadline = time.monotonic() + 120
        while len(list(go.parent.glob("ready-*"))) < len(scores):
            assert time.monotonic() < deadline, [e.poll() for e in evaluations]
            time.sleep(0.1)
        go.touch()
        outputs = [e.communicate(timeout=300)[0] for e in evaluations]
        assert [e.returncode for e in evaluations] == [0] * len(scores), outputs
        best = versions[min(scores, key=scores.get)]
        assert champion(client, model) == best, outputs
