"""Where runs go and what they carry: the default store, a real MLflow server, a dead one."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import mlflow
import pytest

from tests.support.paths import REPO
from vae_mnist.common.errors import TrackingError
from vae_mnist.common.machine import fingerprint
from vae_mnist.common.ports import free_port
from vae_mnist.tracking.runs import machine_tags, run_name, run_tags, stage_run
from vae_mnist.tracking.store import experiment_id, store


def test_default_store_sits_at_the_repository_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / "pipeline").mkdir()
    monkeypatch.chdir(tmp_path / "pipeline")  # found from below, by the dvc.yaml beside it
    assert store() == (f"sqlite:///{tmp_path}/mlflow.db", (tmp_path / "mlartifacts").as_uri())
    # DVC's queued experiments run in a copy but name the original root in DVC_ROOT
    monkeypatch.setenv("DVC_ROOT", "/original/repo")
    assert store()[0] == "sqlite:////original/repo/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.example:5000")
    assert store() == ("http://tracking.example:5000", None)


def test_the_default_store_keeps_artifacts_beside_the_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    try:
        experiment = mlflow.get_experiment(experiment_id("vae-mnist"))
    finally:
        mlflow.set_tracking_uri(None)
    assert experiment.artifact_location == (tmp_path / "mlartifacts").as_uri()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlflow.db", "mlflow.db.lock"]


def test_runs_carry_stage_git_and_dvc_tags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DVC_EXP_BASELINE_REV", raising=False)
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    tags = run_tags("train")
    assert tags["stage"] == "train" and "dvc.exp_name" not in tags
    assert tags["mlflow.source.git.commit"] == head.strip() and "git.commit" not in tags
    assert tags["git.dirty"] in {"True", "False"}
    assert run_name("train", tags) == f"train@{head[:7]}"
    assert run_name("train", {}) == "train"  # no git, no DVC experiment
    machine = fingerprint(REPO)
    assert tags["machine.id"] == machine["id"] and tags["machine.cores"] == str(machine["cores"])
    assert tags["machine.isa"] == ",".join(machine["isa"])
    assert tags["machine.tensorflow"] == machine["tensorflow"]
    assert tags["machine.uv_lock"] == machine["uv_lock"]


def test_the_dirty_flag_counts_the_code_not_params_or_dvcs_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("DVC_EXP_BASELINE_REV", "DVC_ROOT"):
        monkeypatch.delenv(variable, raising=False)
    for name in ("dvc.yaml", "dvc.lock", "params.yaml", "code.py"):
        (tmp_path / name).write_text("committed\n")
    identity = ["-c", "user.name=test", "-c", "user.email=test@example.invalid"]
    for command in (["init", "-q"], ["add", "-A"], [*identity, "commit", "-qm", "code"]):
        subprocess.run(["git", *command], cwd=tmp_path, check=True, capture_output=True)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dvc.lock").write_text("rewritten by dvc repro\n")
    (tmp_path / "params.yaml").write_text("applied by dvc exp run\n")
    assert run_tags("train")["git.dirty"] == "False"  # both are recorded elsewhere
    (tmp_path / "code.py").write_text("edited\n")
    assert run_tags("train")["git.dirty"] == "True"


def test_machine_tags_show_lists_settings_and_nothing_as_one_line_each() -> None:
    tags = machine_tags(
        {"id": "abc", "isa": ["avx", "avx2"], "settings": {"A": "1", "B": "x y"}, "uv_lock": None,
         "cores": 2}
    )  # fmt: skip
    assert tags == {
        "machine.id": "abc", "machine.isa": "avx,avx2", "machine.settings": "A=1,B=x y",
        "machine.uv_lock": "none", "machine.cores": "2",
    }  # fmt: skip
    assert machine_tags({"isa": [], "settings": {}}) == {
        "machine.isa": "none",
        "machine.settings": "none",
    }


def test_a_queued_experiment_is_named_and_tagged_from_what_dvc_gives(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the worker's copy has DVC's own HEAD: the commit the experiment came from is the baseline
    baseline = "0123456789abcdef0123456789abcdef01234567"
    monkeypatch.setenv("DVC_EXP_BASELINE_REV", baseline)
    monkeypatch.setenv("DVC_EXP_NAME", "parky-synd")
    monkeypatch.setenv("DVC_STAGE", "train")
    tags = run_tags("train")
    assert tags["mlflow.source.git.commit"] == baseline and "git.dirty" not in tags
    assert tags["dvc.exp_name"] == "parky-synd" and tags["dvc.stage"] == "train"
    assert run_name("train", tags) == "train@parky-synd"


def test_a_failing_stage_ends_its_run_failed(mlflow_store: str) -> None:
    with pytest.raises(RuntimeError), stage_run("train", "failures"):
        raise RuntimeError("boom")
    client = mlflow.MlflowClient(mlflow_store)
    experiment = client.get_experiment_by_name("failures")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FAILED"


def test_unreachable_server_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    start = time.monotonic()
    with pytest.raises(TrackingError) as caught, stage_run("download", "vae-mnist"):
        pass
    message = str(caught.value)
    assert message.startswith(f"MLflow store {uri} cannot be used")
    assert "check MLFLOW_TRACKING_URI" in message and "\n" not in message
    assert time.monotonic() - start < 60
    mlflow.set_tracking_uri(None)
