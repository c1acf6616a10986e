"""Mistyped or out-of-range params tried by hand: the real train script, run as a user runs it,
stops before any work with exit code 2 and one line that names the key and the value."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

SCRIPT = REPO / "pipeline" / "train.py"
ARGS = ("data/processed", "models/vae.keras", "reports/training")

# (id, [(text in params.yaml, its replacement), ...], what the one line must name)
CASES = [
    ("typo-key", [("  epochs: 12", "  epoch: 12")], ["train.epoch", "did you mean 'train.epochs'"]),
    ("string-int", [("batch_size: 128", 'batch_size: "128"')], ["train.batch_size = '128'"]),
    ("latent-0", [("latent_dim: 2", "latent_dim: 0")], ["model.latent_dim = 0"]),
    ("epochs-0", [("epochs: 12", "epochs: 0")], ["train.epochs = 0"]),
    (
        "batch-over-train-set",
        [("batch_size: 128", "batch_size: 60000")],
        ["train.batch_size = 60000", "data.val_size = 5000", "at most 55000"],
    ),
    ("val-all", [("val_size: 5000", "val_size: 60000")], ["data.val_size = 60000"]),
    ("lr-0", [("learning_rate: 0.001", "learning_rate: 0")], ["train.learning_rate = 0"]),
    ("lr-negative", [("learning_rate: 0.001", "learning_rate: -1e-3")], ["learning_rate = -0.001"]),
    ("iwae-0", [("iwae_samples: 100", "iwae_samples: 0")], ["evaluate.iwae_samples = 0"]),
    (
        "iwae-huge",
        [("iwae_samples: 100", "iwae_samples: 1000000000")],
        ["evaluate.iwae_samples = 1000000000"],
    ),
    (
        "iwae-out-of-memory",
        [("[512, 256, 128]", "[8192, 8192]"), ("iwae_samples: 100", "iwae_samples: 100000")],
        ["evaluate.iwae_samples = 100000", "6555200000 bytes", "limit of 4294967296 bytes"],
    ),
    ("activation", [("activation: relu", "activation: relux")], ["model.activation = 'relux'"]),
    ("schedule", [("lr_schedule: constant", "lr_schedule: linear")], ["lr_schedule = 'linear'"]),
    ("malformed", [("  epochs: 12", "  epochs: 12: 3")], ["not valid YAML", "epochs: 12: 3"]),
    (
        "duplicated-key",
        [("  epochs: 12\n", "  epochs: 12\n  epochs: 3\n")],
        ["'train.epochs' is written twice", "(12)", "(3)"],
    ),
]


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize(("edits", "named"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_bad_param_stops_the_stage_before_any_work(
    tmp_path: Path, edits: list[tuple[str, str]], named: list[str]
) -> None:
    text = (REPO / "params.yaml").read_text(encoding="utf-8")
    for old, new in edits:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    (tmp_path / "params.yaml").write_text(text, encoding="utf-8")
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}

    result = subprocess.run(
        [sys.executable, str(SCRIPT), *ARGS],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip

    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: params.yaml: ")
    for part in named:
        assert part in lines[0]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert files_under(tmp_path) == ["params.yaml"]  # no mlflow.db, no outs: no work began
