"""train.distribution in fresh processes (tf.distribute fixes the devices and the cluster when
TensorFlow starts): mirrored replicas and worker processes against one device, through
tests/support/distribution_probe.py, and pipeline/train.py's chief-only writes, disagreeing and
dying workers. The in-process parts: tests/unit/training/test_distribution.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest
import yaml

from tests.support.configs import override
from tests.support.data import foreground
from tests.support.distribution_probe import TINY
from tests.support.paths import REPO
from vae_mnist.common.config import Config, set_dotted
from vae_mnist.stages.preprocess import preprocess
from vae_mnist.training.cluster import (
    WORKERS_ENV,
    free_addresses,
    tf_config,
)
from vae_mnist.training.distribution import CPU_DEVICES_ENV, TF_CONFIG_ENV

SRC = str(REPO / "src")


def clean_env(**changes: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in (TF_CONFIG_ENV, CPU_DEVICES_ENV, WORKERS_ENV) and not k.startswith("MLFLOW_")
    }
    return {**env, "PYTHONPATH": SRC, "TF_CPP_MIN_LOG_LEVEL": "2", **changes}


def probe(out: Path, jobs: list[dict[str, Any]], **env: str) -> subprocess.Popen[str]:
    out.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.distribution_probe", str(out), json.dumps(jobs)],
        cwd=REPO,
        env=clean_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> None:
    _, err = process.communicate(timeout=600)
    assert process.returncode == 0, err[-3000:]


def unpack(path: Path) -> dict[str, Any]:
    with np.load(path) as saved:
        result = {key: saved[key] for key in saved.files}
    result["weights"] = [result.pop(f"w{i}") for i in range(sum(k[0] == "w" for k in result))]
    result["topology"] = json.loads(str(result["topology"]))
    if "history" in result:
        result["history"] = json.loads(str(result["history"]))
    return result


MIRRORED = {"train.distribution": "mirrored"}


MULTI = {"train.distribution": "multi_worker"}


SCHEDULED = {"train.lr_schedule": "exponential", "train.kl_warmup_epochs": 2}


@pytest.fixture(scope="module")
def probed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Every topology's numbers, from two processes over the CPU split in two (one device and
    two replicas side by side) and a cluster of two worker processes: a TensorFlow start is
    the slow part, so each process runs several jobs."""
    out = tmp_path_factory.mktemp("probed")
    jobs = []
    for binarize in ("none", "dynamic"):
        changes = {"data.binarize": binarize}
        jobs += [
            {"name": f"step_one_{binarize}", "mode": "step", "changes": changes},
            {"name": f"step_two_{binarize}", "mode": "step", "changes": {**changes, **MIRRORED}},
            {"name": f"step_none_{binarize}", "mode": "step",
             "changes": {**changes, "train.learning_rate": 1e-12}},
        ]  # fmt: skip
    one_epoch = {**SCHEDULED, "train.epochs": 1}
    jobs += [
        {"name": "fit_one_1", "mode": "fit", "changes": one_epoch, "xla": False},
        {"name": "fit_two_1", "mode": "fit", "changes": {**one_epoch, **MIRRORED}},
        {"name": "fit_two", "mode": "fit", "changes": {**SCHEDULED, **MIRRORED}},
        {"name": "fit_two_again", "mode": "fit", "changes": {**SCHEDULED, **MIRRORED}},
        {"name": "fit_one", "mode": "fit", "changes": SCHEDULED},
    ]
    finish(probe(out, jobs, VAE_MNIST_CPU_DEVICES="2"))
    addresses = free_addresses(2)
    multi = [
        {"name": "fit_multi_{index}", "mode": "fit", "changes": {**SCHEDULED, **MULTI}},
        {"name": "fit_multi_again_{index}", "mode": "fit", "changes": {**SCHEDULED, **MULTI}},
    ]
    workers = [probe(out, [{**job, "name": job["name"].format(index=i)} for job in multi],
                     TF_CONFIG=tf_config(addresses, i)) for i in range(2)]  # fmt: skip
    for worker in workers:
        finish(worker)
    return {path.stem: unpack(path) for path in out.glob("*.npz")}


def assert_weights_close(first: list[np.ndarray], second: list[np.ndarray], rtol: float) -> None:
    assert len(first) == len(second) > 0
    for a, b in zip(first, second, strict=True):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.abs(b).max())


def assert_weights_equal(first: list[np.ndarray], second: list[np.ndarray]) -> None:
    assert len(first) == len(second) > 0
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.fixture
def processed(tiny_stage: Config, raw_dir: Path, tmp_path: Path, mlflow_store: str) -> Path:
    folder = tmp_path / "processed"
    preprocess(tiny_stage, raw_dir, folder)
    return folder


@pytest.fixture
def tiny_stage(config: Config) -> Config:
    return override(config, {**TINY_STAGE, "train.distribution": "multi_worker"})


TINY_STAGE = {**TINY, "train.epochs": 2, "data.val_size": 20, "evaluate.iwae_samples": 3}


def workspace(root: Path, config: Config, processed: Path, **changes: Any) -> Path:
    """A host's checkout: params.yaml, the processed data, its own MLflow store."""
    root.mkdir()
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for dotted, value in {**flat_changes(config), **changes}.items():
        set_dotted(params, dotted, value)
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    (root / "data").mkdir()
    (root / "data" / "processed").symlink_to(processed)
    return root


def flat_changes(config: Config) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in config.flat().items()}


def train_command() -> list[str]:
    return [sys.executable, str(REPO / "pipeline" / "train.py"), "data/processed",
            "models/vae.keras", "reports/training"]  # fmt: skip


def stage_env(root: Path, **changes: str) -> dict[str, str]:
    return clean_env(MLFLOW_TRACKING_URI=f"sqlite:///{root / 'mlflow.db'}", **changes)


def train_runs(root: Path) -> list[mlflow.entities.Run]:
    client = mlflow.MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    return [
        run
        for experiment in client.search_experiments()
        for run in client.search_runs([experiment.experiment_id])
        if run.data.tags.get("stage") == "train"
    ]


def two_hosts(
    tmp_path: Path, config: Config, processed: Path, second: dict[str, Any]
) -> tuple[list[Path], list[subprocess.CompletedProcess[str]]]:
    """Worker 0 and worker 1 of one cluster, each in its own checkout, as on two machines."""
    roots = [workspace(tmp_path / "host0", config, processed),
             workspace(tmp_path / "host1", config, processed, **second)]  # fmt: skip
    addresses = free_addresses(2)
    hosts = [
        subprocess.Popen(
            train_command(),
            cwd=root,
            env=stage_env(root, TF_CONFIG=tf_config(addresses, i)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=foreground,
        )
        for i, root in enumerate(roots)
    ]
    results = []
    for host in hosts:
        out, err = host.communicate(timeout=600)
        results.append(subprocess.CompletedProcess(host.args, host.returncode, out, err))
    return roots, results


def children(pid: int) -> list[int]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = [
            int(p)
            for task in Path(f"/proc/{pid}/task").iterdir()
            for p in (task / "children").read_text().split()
        ]
        if found:
            return found
        time.sleep(0.1)
    return []


@pytest.mark.parametrize("binarize", ["none", "dynamic"])
def test_a_step_on_two_replicas_is_the_one_device_step_of_the_global_batch(
    probed: dict[str, dict[str, Any]], binarize: str
) -> None:
    """Each replica takes half the batch, with the noise (latent and Bernoulli) one device
    draws for those rows, and scales its loss by 1/2: the summed gradients are the global
    batch's. Unscaled, they would be twice that, and the step would not match."""
    one, two = probed[f"step_one_{binarize}"], probed[f"step_two_{binarize}"]
    assert two["topology"]["distribution.replicas"] == 2
    assert two["rows"].tolist() == [[0, 3], [3, 7]]  # the shares of a batch of 7
    assert one["rows"].tolist() == [[0, 7]]
    assert float(two["loss"]) == pytest.approx(float(one["loss"]), rel=1e-6)
    assert_weights_close(two["weights"], one["weights"], rtol=1e-5)
    unmoved = probed[f"step_none_{binarize}"]["weights"]
    moved = [np.abs(a - b).max() for a, b in zip(one["weights"], unmoved, strict=True)]
    assert max(moved) > 1e-4  # the step changed the weights: the comparison above has teeth


def test_an_epoch_on_two_replicas_is_keras_fit_on_one_device(
    probed: dict[str, dict[str, Any]],
) -> None:
    """Against Keras' fit without XLA (see the probe), validation included."""
    one, two = probed["fit_one_1"], probed["fit_two_1"]
    assert two["history"][0] == pytest.approx(one["history"][0], rel=1e-5)
    assert_weights_close(two["weights"], one["weights"], rtol=1e-4)


def test_mirrored_fit_follows_the_schedule_learns_and_repeats_exactly(
    probed: dict[str, dict[str, Any]],
) -> None:
    two, default = probed["fit_two"], probed["fit_one"]
    for key in ("learning_rate", "beta"):
        assert [row[key] for row in two["history"]] == pytest.approx(
            [row[key] for row in default["history"]], rel=1e-6
        )
    assert [row["beta"] for row in two["history"]] == [0.5, 1.0, 1.0]
    losses = [row["val/neg_elbo"] for row in two["history"]]
    assert losses == sorted(losses, reverse=True)
    # Three epochs of a tiny model, on other noise (XLA's) and batch order (Keras'): the same
    # neighbourhood, not the same numbers; at full scale the README's runs land within 1 nat.
    assert losses[-1] == pytest.approx(default["history"][-1]["val/neg_elbo"], rel=0.01)
    assert two["history"] == probed["fit_two_again"]["history"]
    assert_weights_equal(two["weights"], probed["fit_two_again"]["weights"])


def test_two_workers_hold_the_same_weights_as_each_other_and_as_two_replicas(
    probed: dict[str, dict[str, Any]],
) -> None:
    chief, other = probed["fit_multi_0"], probed["fit_multi_1"]
    assert (chief["topology"]["chief"], other["topology"]["chief"]) == (True, False)
    assert chief["topology"]["distribution.replicas"] == 2
    assert chief["topology"]["distribution.workers"] == 2
    assert_weights_equal(chief["weights"], other["weights"])
    assert chief["history"] == other["history"]
    assert_weights_close(chief["weights"], probed["fit_two"]["weights"], rtol=1e-4)
    assert chief["history"][-1] == pytest.approx(probed["fit_two"]["history"][-1], rel=1e-5)
    assert_weights_equal(chief["weights"], probed["fit_multi_again_0"]["weights"])


def test_local_workers_train_and_the_chief_alone_logs_and_registers(
    tiny_stage: Config, processed: Path, tmp_path: Path
) -> None:
    root = workspace(tmp_path / "host", tiny_stage, processed)
    result = subprocess.run(
        train_command(),
        cwd=root,
        env=stage_env(root),
        capture_output=True,
        text=True,
        timeout=600,
        preexec_fn=foreground,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "training on 2 local workers" in result.stderr
    assert (root / "models" / "vae.keras").is_file()
    assert (root / "reports" / "training").is_dir()
    (run,) = train_runs(root)
    assert run.info.status == "FINISHED"
    assert run.data.params["train.distribution"] == "multi_worker"
    assert run.data.params["distribution.replicas"] == "2"
    assert run.data.params["distribution.workers"] == "2"
    client = mlflow.MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    versions = client.search_model_versions(f"name = '{tiny_stage.mlflow.registered_model_name}'")
    assert [(str(v.version), v.run_id) for v in versions] == [("1", run.info.run_id)]
    card = versions[0].description
    assert "`distribution.replicas=2`" in card and "`distribution.workers=2`" in card


def test_on_two_hosts_the_worker_that_is_not_chief_writes_nothing(
    tiny_stage: Config, processed: Path, tmp_path: Path
) -> None:
    roots, results = two_hosts(tmp_path, tiny_stage, processed, {})
    assert [r.returncode for r in results] == [0, 0], [r.stderr[-2000:] for r in results]
    assert (roots[0] / "models" / "vae.keras").is_file() and len(train_runs(roots[0])) == 1
    assert sorted(p.name for p in roots[1].iterdir()) == ["data", "params.yaml"]


def test_hosts_that_disagree_on_params_both_stop_with_one_line_before_a_run(
    tiny_stage: Config, processed: Path, tmp_path: Path
) -> None:
    roots, results = two_hosts(tmp_path, tiny_stage, processed, {"seed": 7})
    for result in results:
        assert result.returncode == 1
        assert (
            result.stderr.strip()
            .splitlines()[-1]
            .startswith("error: the workers disagree on params.yaml or on the processed data")
        )
    assert not (roots[0] / "models").exists() and train_runs(roots[0]) == []


def test_a_local_worker_killed_mid_run_stops_the_chief_with_one_line_and_no_outs(
    tiny_stage: Config, processed: Path, tmp_path: Path
) -> None:
    root = workspace(tmp_path / "host", tiny_stage, processed, **{"train.epochs": 2000})
    chief = subprocess.Popen(
        train_command(),
        cwd=root,
        env=stage_env(root),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=foreground,
    )
    assert chief.stdout is not None
    for line in chief.stdout:  # the chief prints a line per epoch once both workers train
        if line.startswith("Epoch 3/"):
            break
    (worker,) = children(chief.pid)
    os.kill(worker, signal.SIGKILL)
    _, err = chief.communicate(timeout=120)
    assert chief.returncode == 1, err
    assert err.strip().splitlines()[-1] == "error: local worker 1 was killed by SIGKILL"
    assert not (root / "models").exists()
    assert list((root / "reports").iterdir()) == []  # no history, no staging folder left
    assert [run.info.status for run in train_runs(root)] == ["FAILED"]
