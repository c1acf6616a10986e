"""The pipeline against the team stack, unchanged: runs and models on the MLflow server (on
PostgreSQL), artifacts and the DVC remote in Ceph's S3, experiments shared between two clones
through a git remote, and the champion served over HTTP.

The tests share one copy of the repository whose shrunk pipeline ran against the stack, and run
in file order: the remote round trip configures the DVC remote the experiment tests use.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pytest

from tests.support.configs import SHRUNK
from tests.support.data import real_mnist
from tests.support.stack import log_in
from tests.support.workspace import BIN, STAGES, Repo
from vae_mnist.common.ports import free_port
from vae_mnist.data.arrays import load_split
from vae_mnist_tools.stack.ceph import s3_client
from vae_mnist_tools.stack.state import Stack

EXPERIMENT = "vae-mnist"


MODEL = "vae-mnist"


CANDIDATES = "vae-mnist-candidates"  # the stack governs MODEL: versions are registered here


SHARED_EXPERIMENT = "team-latent3"


DIGIT = 5


@pytest.fixture(scope="module")
def team_repo(team_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Repo:
    """A copy whose shrunk pipeline ran once with MLFLOW_TRACKING_URI on the stack's server."""
    repo = Repo(tmp_path_factory.mktemp("team"), str(real_mnist()))
    repo.env.update(team_stack.client_env())  # as the stack's admin
    repo.set_params(SHRUNK)
    assert repo.repro() == STAGES
    repo.commit("the shrunk pipeline and its lock")
    return repo


@pytest.fixture(autouse=True)
def as_admin(team_stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    log_in(team_stack, monkeypatch)


def bucket(stack: Stack, name: str) -> dict[str, bytes]:
    """Every object in a bucket, read through the S3 API: key -> bytes."""
    s3 = s3_client(stack.s3_endpoint, stack.access_key, stack.secret_key)
    objects = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
        for entry in page.get("Contents", []):
            objects[entry["Key"]] = s3.get_object(Bucket=name, Key=entry["Key"])["Body"].read()
    return objects


def post(url: str, payload: object) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, json.dumps(payload).encode(), {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def group_alive(pgid: int) -> bool:
    """Whether a live (not zombie) process is left in the process group."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _, group = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):
            continue
        if int(group) == pgid and state != "Z":
            return True
    return False


def test_repro_lands_runs_model_and_alias_on_the_server_and_artifacts_in_s3(
    team_repo: Repo, team_stack: Stack
) -> None:
    client = mlflow.MlflowClient(team_stack.tracking_uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time"])
    assert [r.data.tags["stage"] for r in runs] == STAGES
    names = [r.info.run_name for r in runs]
    assert all(n.startswith(f"{s}@") for s, n in zip(STAGES, names, strict=True)), names
    assert all(r.info.status == "FINISHED" for r in runs)
    train, evaluate = runs[2], runs[3]
    (candidate,) = client.search_model_versions(f"name = '{CANDIDATES}'")
    assert candidate.run_id == train.info.run_id
    # the admin may promote: the candidate beat no champion, so it was copied and holds it
    (version,) = client.search_model_versions(f"name = '{MODEL}'")
    assert version.tags["candidate.source"] == f"{CANDIDATES} v{candidate.version}"
    assert version.tags["model.sha256"] == train.data.tags["model.sha256"]
    assert client.get_model_version_by_alias(MODEL, "champion").version == version.version
    assert evaluate.data.tags["train_run_id"] == train.info.run_id

    # The artifacts went through the server into the bucket, byte for byte: no local store.
    objects = bucket(team_stack, team_stack.artifacts_bucket)
    figures = team_repo.root / "reports" / "evaluation" / "figures"
    for run in (train, evaluate):
        for figure in figures.iterdir():
            key = f"{experiment.experiment_id}/{run.info.run_id}/artifacts/figures/{figure.name}"
            assert objects[key] == figure.read_bytes(), key
    # the train run's logged model, under its experiment (other tests' experiments share the
    # bucket of this session's stack)
    (logged,) = train.outputs.model_outputs
    assert f"{experiment.experiment_id}/models/{logged.model_id}/artifacts/MLmodel" in objects
    assert not any((team_repo.root / name).exists() for name in ("mlflow.db", "mlartifacts"))


def test_dvc_remote_in_the_stack_round_trips_every_out(team_repo: Repo, team_stack: Stack) -> None:
    """The DVC remote commands `make stack-up` prints, as a user pastes them."""
    for line in team_stack.env_lines():
        if line.startswith("dvc "):
            team_repo.run(str(BIN / "dvc"), *shlex.split(line)[1:])
    config = (team_repo.root / ".dvc" / "config").read_text()
    assert team_stack.s3_endpoint in config and team_stack.secret_key not in config
    local = (team_repo.root / ".dvc" / "config.local").read_text()
    assert str(team_stack.secrets.s3_credentials) in local  # the keys stay in the stack's file
    assert team_stack.secret_key not in local and team_stack.access_key not in local
    assert team_repo.run("git", "check-ignore", ".dvc/config.local").returncode == 0
    team_repo.commit("the team's DVC remote")

    before = team_repo.digests()
    team_repo.dvc("push")
    stored = bucket(team_stack, team_stack.dvc_bucket)
    model_md5 = hashlib.md5((team_repo.root / "models" / "vae.keras").read_bytes()).hexdigest()
    assert f"vae-mnist/files/md5/{model_md5[:2]}/{model_md5[2:]}" in stored
    team_repo.delete_outs_and_cache()
    team_repo.dvc("pull")
    assert team_repo.digests() == before
    assert "Data and pipelines are up to date." in team_repo.dvc("status").stdout
    assert team_repo.repro() == []


def test_an_experiment_pushed_from_one_clone_is_applied_in_another_without_retraining(
    team_repo: Repo, team_stack: Stack, tmp_path: Path
) -> None:
    origin = tmp_path / "origin.git"
    team_repo.run("git", "init", "-q", "--bare", str(origin))
    team_repo.run("git", "remote", "add", "origin", str(origin))
    team_repo.run("git", "push", "-q", "origin", "HEAD")
    team_repo.dvc("exp", "run", "--name", SHARED_EXPERIMENT, "-S", "model.latent_dim=3")
    produced = team_repo.digests()
    team_repo.dvc("exp", "push", "origin", SHARED_EXPERIMENT)
    team_repo.run("git", "checkout", "--", ".")  # the workspace back to the committed baseline
    team_repo.dvc("checkout")

    other = Repo(tmp_path / "other", team_repo.env.get("MNIST_MIRROR"), clone_of=str(origin))
    other.env.update(team_stack.client_env())
    for line in team_stack.env_lines():
        if line.startswith("dvc remote modify --local"):  # credentials never travel in git
            other.run(str(BIN / "dvc"), *shlex.split(line)[1:])
    other.dvc("exp", "pull", "origin", SHARED_EXPERIMENT)
    other.dvc("exp", "apply", SHARED_EXPERIMENT)
    assert other.digests() == produced
    assert other.repro() == []  # the same outs, restored rather than retrained

    # its training run is already on the shared server, named after the experiment
    client = mlflow.MlflowClient(team_stack.tracking_uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    (train,) = client.search_runs(
        [experiment.experiment_id],
        f"tags.stage = 'train' and tags.`dvc.exp_name` = '{SHARED_EXPERIMENT}'",
    )
    assert train.data.params["model.latent_dim"] == "3"
    assert train.data.tags["model.sha256"] == produced["models/vae.keras"]


def test_the_champion_served_over_http_reconstructs_as_evaluated(
    team_repo: Repo, team_stack: Stack, tmp_path: Path
) -> None:
    """`make serve`'s command against the stack: all test images of one digit through HTTP, and
    the mean error of what comes back is the one the evaluate stage measured for that model."""
    client = mlflow.MlflowClient(team_stack.tracking_uri)
    champion = client.get_model_version_by_alias(MODEL, "champion")
    experiment = client.get_experiment_by_name(EXPERIMENT)
    evaluated = client.search_runs(
        [experiment.experiment_id],
        f"tags.stage = 'evaluate' and tags.train_run_id = '{champion.run_id}'",
        order_by=["attributes.start_time DESC"],
    )[0]
    per_digit = json.loads(
        Path(
            client.download_artifacts(evaluated.info.run_id, "per_digit.json", str(tmp_path))
        ).read_text()
    )
    images, labels = load_split(team_repo.root / "data" / "processed", "test")
    images = images[labels == DIGIT]  # ~900 images: the JSON path serves ~8 ms an image here

    port = free_port()
    log = (team_repo.root / "serve.log").open("w")
    server = subprocess.Popen(
        [str(BIN / "python"), "-m", "vae_mnist", "serve", "--port", str(port)],
        cwd=team_repo.root, env=team_repo.env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{url}/ping", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None, (team_repo.root / "serve.log").read_text()
            assert time.monotonic() < deadline, "the model server did not answer in 180 s"
            time.sleep(1)

        status, body = post(f"{url}/invocations", {"inputs": images.tolist()})
        assert status == 200, body
        reconstructions = np.asarray(body["predictions"], dtype=np.float32)
        assert reconstructions.shape == (len(images), 28, 28, 1)
        assert reconstructions.min() >= 0.0 and reconstructions.max() <= 1.0
        mse = float(((images[..., None] - reconstructions) ** 2).mean())
        (measured,) = [r["mse"] for r in per_digit if r["digit"] == str(DIGIT)]
        assert mse == pytest.approx(measured, rel=1e-4)

        status, body = post(f"{url}/invocations", {"inputs": images[:2, :27].tolist()})
        assert status == 400 and body["error_code"] == "INVALID_PARAMETER_VALUE", body
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # `mlflow models serve` and its uvicorn
        server.wait(timeout=60)
        log.close()
        deadline = time.monotonic() + 60
        while group_alive(server.pid):
            assert time.monotonic() < deadline, "the model server outlived SIGTERM by 60 s"
            time.sleep(0.2)
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{url}/ping", timeout=2)


def test_a_run_in_the_run_cache_on_the_remote_is_restored_in_another_clone_without_training(
    team_repo: Repo, team_stack: Stack, tmp_path: Path
) -> None:
    """Beyond the committed results: one clone trains with a param changed and pushes DVC's
    run-cache to the stack's S3 remote; a clone made from git and that remote alone sets the
    same param, pulls the run-cache, and `dvc repro --pull` restores that run instead of
    training (a plain `dvc repro` would train: the outs of a run-cache record are fetched only
    with --pull)."""
    changed = {"train.learning_rate": 0.002}
    team_repo.set_params(changed)
    assert team_repo.repro() == ["train", "evaluate"]
    produced = team_repo.digests()
    team_repo.dvc("push", "--run-cache")
    team_repo.run("git", "checkout", "--", ".")  # the workspace back to the committed baseline
    team_repo.dvc("checkout")

    other = Repo(tmp_path / "other", None, clone_of=str(team_repo.root))  # no MNIST mirror
    other.env.update(team_stack.client_env())
    for line in team_stack.env_lines():
        if line.startswith("dvc remote modify --local"):  # credentials never travel in git
            other.run(str(BIN / "dvc"), *shlex.split(line)[1:])
    other.set_params(changed)
    other.dvc("pull", "--run-cache")  # the run-cache's records; the outs they name come with
    assert other.repro("--pull") == []  # `repro --pull`: no stage ran
    assert "Stage 'train' is cached - skipping run" in other.printed
    assert other.digests() == produced
