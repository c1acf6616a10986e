"""The local team stack: real PostgreSQL, Ceph (mon, OSD, S3 gateway) and mlflow server processes
on 127.0.0.1, no mocks."""

from __future__ import annotations

import base64
import os
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.support.paths import REPO
from tests.support.stack import log_in, processes_of, require_stack_binaries, stack_folder
from vae_mnist.common.errors import StackError
from vae_mnist.common.ports import free_port
from vae_mnist_tools.stack.ceph import s3_client
from vae_mnist_tools.stack.control import DEFAULT_PORTS, down, status, up
from vae_mnist_tools.stack.processes import alive
from vae_mnist_tools.stack.state import Stack, read

SERVICES = ["postgres", "ceph-mon", "ceph-osd", "radosgw", "mlflow"]


ANY_PORTS = dict.fromkeys(DEFAULT_PORTS, 0)


BIN = Path(sys.executable).parent


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`vae-mnist stack ...` in a fresh process."""
    return subprocess.run(
        [sys.executable, "-m", "vae_mnist", "stack", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
        check=False,
    )


def any_ports_args() -> list[str]:
    return [arg for key in DEFAULT_PORTS for arg in (f"--{key}-port", "0")]


def fake_postgres(tmp_path: Path) -> Path:
    """A folder with executables named initdb and postgres, which the stack must never run."""
    folder = tmp_path / "pg" / "bin"
    folder.mkdir(parents=True)
    for name in ("initdb", "postgres"):
        (folder / name).write_text("#!/bin/sh\nexit 1\n")
        (folder / name).chmod(0o755)
    return folder


def kill_and_wait(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    for _ in range(100):
        if not alive(pid):
            return
        time.sleep(0.1)
    raise AssertionError(f"{pid} survived SIGKILL")


def test_postgres_holds_mlflows_tables(team_stack: Stack) -> None:
    import psycopg

    with psycopg.connect(team_stack.postgres_uri) as connection:
        tables = {
            row[0]
            for row in connection.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
        }
        (revisions,) = connection.execute("SELECT count(*) FROM alembic_version").fetchone()
    assert {"experiments", "runs", "metrics", "registered_models", "model_versions"} <= tables
    assert revisions == 1


def test_s3_round_trip_with_the_stacks_keys_only(team_stack: Stack) -> None:
    client = s3_client(team_stack.s3_endpoint, team_stack.access_key, team_stack.secret_key)
    buckets = {bucket["Name"] for bucket in client.list_buckets()["Buckets"]}
    assert buckets == {team_stack.artifacts_bucket, team_stack.dvc_bucket}
    body = os.urandom(6 << 20)  # past the gateway's 4 MiB head object, into tail objects
    client.put_object(Bucket=team_stack.dvc_bucket, Key="test/round-trip", Body=body)
    assert (
        client.get_object(Bucket=team_stack.dvc_bucket, Key="test/round-trip")["Body"].read()
        == body
    )

    stranger = s3_client(team_stack.s3_endpoint, team_stack.access_key, "not-the-secret")
    with pytest.raises(Exception, match="SignatureDoesNotMatch"):
        stranger.get_object(Bucket=team_stack.dvc_bucket, Key="test/round-trip")


def test_the_server_speaks_only_tls_with_the_stacks_certificate(team_stack: Stack) -> None:
    assert team_stack.tracking_uri.startswith("https://127.0.0.1:")
    trusted = ssl.create_default_context(cafile=str(team_stack.ca))
    url = f"{team_stack.tracking_uri}/health"
    with urllib.request.urlopen(url, timeout=10, context=trusted) as response:
        assert response.status == 200
        assert response.read().strip() == b"OK"
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        urllib.request.urlopen(url, timeout=10)  # the system's CAs do not know the stack's
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(url.replace("https://", "http://"), timeout=10)  # no plain HTTP
    # the CA's own key was never written: nothing can sign another certificate these trust
    assert sorted(p.name for p in team_stack.ca.parent.iterdir()) == [
        "ca.pem", "server.key", "server.pem"
    ]  # fmt: skip
    assert (team_stack.ca.parent / "server.key").stat().st_mode & 0o777 == 0o600


def test_every_call_but_health_needs_a_user(team_stack: Stack) -> None:
    trusted = ssl.create_default_context(cafile=str(team_stack.ca))
    url = f"{team_stack.tracking_uri}/api/2.0/mlflow/experiments/search?max_results=1"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url, timeout=10, context=trusted)
    assert refused.value.code == 401
    password = team_stack.secrets.password("admin").read_text().strip()
    token = base64.b64encode(f"admin:{password}".encode()).decode()
    request = urllib.request.Request(url, headers={"Authorization": f"Basic {token}"})
    with urllib.request.urlopen(request, timeout=10, context=trusted) as response:
        assert response.status == 200
    wrong = base64.b64encode(b"admin:not-the-password").decode()
    request = urllib.request.Request(url, headers={"Authorization": f"Basic {wrong}"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10, context=trusted)
    assert refused.value.code == 401
    # a Host the server is not reached by (DNS rebinding) is refused before any login
    request = urllib.request.Request(
        url, headers={"Authorization": f"Basic {token}", "Host": "attacker.example:80"}
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10, context=trusted)
    assert refused.value.code in (400, 403)


def test_secrets_are_files_of_mode_0600_and_never_in_the_servers_arguments(
    team_stack: Stack,
) -> None:
    folder = team_stack.secrets.folder
    assert folder.stat().st_mode & 0o777 == 0o700
    files = sorted(folder.iterdir())
    assert {f.name for f in files} >= {
        "admin.password", "flask-secret-key", "s3-credentials", "basic-auth.ini", "sweep-storage"
    }  # fmt: skip
    assert all(f.stat().st_mode & 0o777 == 0o600 for f in files)
    sweeps = (folder / "sweep-storage").read_text().strip()
    assert sweeps.startswith("postgresql+psycopg://sweeps:")  # a role of its own, not MLflow's
    secrets = [team_stack.secret_key, team_stack.postgres_uri.split(":")[2].split("@")[0]]
    secrets.append(sweeps.split(":")[2].split("@")[0])
    secrets += [
        (folder / name).read_text().strip() for name in ("admin.password", "flask-secret-key")
    ]
    for line in processes_of(team_stack.folder):  # every process's command line
        assert not any(secret in line for secret in secrets), line
    logs = "".join(f.read_text(errors="replace") for f in (team_stack.folder / "logs").iterdir())
    assert not any(secret in logs for secret in secrets)


def test_run_artifact_lands_in_the_artifacts_bucket(
    team_stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    log_in(team_stack, monkeypatch)
    # Proxied artifacts: the client holds no S3 credentials and does not know the endpoint.
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MLFLOW_S3_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    client = MlflowClient(team_stack.tracking_uri)
    experiment_id = client.create_experiment(f"stack-test-{uuid.uuid4().hex[:8]}")
    run = client.create_run(experiment_id)
    content = uuid.uuid4().hex
    (tmp_path / "note.txt").write_text(content)
    client.log_artifact(run.info.run_id, str(tmp_path / "note.txt"))
    client.set_terminated(run.info.run_id)
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")

    s3 = s3_client(team_stack.s3_endpoint, team_stack.access_key, team_stack.secret_key)
    listed = s3.list_objects_v2(Bucket=team_stack.artifacts_bucket, Prefix=f"{experiment_id}/")
    keys = [item["Key"] for item in listed.get("Contents", [])]
    assert keys == [f"{experiment_id}/{run.info.run_id}/artifacts/note.txt"]
    stored = s3.get_object(Bucket=team_stack.artifacts_bucket, Key=keys[0])["Body"].read()
    assert stored.decode() == content


def test_status_and_env_from_a_fresh_process(team_stack: Stack) -> None:
    result = cli("status", "--folder", str(team_stack.folder))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for service in SERVICES:
        (line,) = [line for line in lines if line.split()[0] == service]
        assert line.split()[1] == "up"
    assert status(team_stack.folder) == dict.fromkeys(SERVICES, True)

    result = cli("env", "--folder", str(team_stack.folder))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    secrets = team_stack.secrets
    assert f"export MLFLOW_TRACKING_URI={team_stack.tracking_uri}" in lines
    assert f"export MLFLOW_TRACKING_SERVER_CERT_PATH={team_stack.ca}" in lines
    assert "export MLFLOW_TRACKING_USERNAME=admin" in lines
    assert f'export MLFLOW_TRACKING_PASSWORD="$(cat {secrets.password("admin")})"' in lines
    assert f'export VAE_MNIST_SWEEP_STORAGE="$(cat {secrets.sweep_storage})"' in lines
    assert f"dvc remote add -f -d team s3://{team_stack.dvc_bucket}/vae-mnist" in lines
    assert f"dvc remote modify team endpointurl {team_stack.s3_endpoint}" in lines
    assert f"dvc remote modify --local team credentialpath {secrets.s3_credentials}" in lines
    assert lines[0].startswith(f"MLflow UI: {team_stack.tracking_uri} (user admin, password in ")
    # what it prints names where the secrets are, never a secret
    for secret in (
        team_stack.secret_key,
        team_stack.access_key,
        secrets.password("admin").read_text().strip(),
        secrets.flask_key.read_text().strip(),
    ):
        assert secret not in result.stdout


def test_up_on_a_running_stack_returns_it(team_stack: Stack) -> None:
    assert up(team_stack.folder) == team_stack
    assert read(team_stack.folder) == team_stack


def test_the_printed_dvc_commands_push_into_the_dvc_bucket(
    team_stack: Stack, tmp_path: Path
) -> None:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        env.pop(name, None)

    def run(command: list[str]) -> None:
        subprocess.run(command, cwd=tmp_path, env=env, check=True, capture_output=True, timeout=120)

    run(["git", "init", "-q"])
    run(["dvc", "init", "-q"])
    printed = cli("env", "--folder", str(team_stack.folder)).stdout.splitlines()
    for line in printed:
        if line.startswith("dvc "):
            run(shlex.split(line))
    content = uuid.uuid4().bytes * 1000
    (tmp_path / "blob.bin").write_bytes(content)
    run(["dvc", "add", "-q", "blob.bin"])
    run(["dvc", "push", "-q"])

    s3 = s3_client(team_stack.s3_endpoint, team_stack.access_key, team_stack.secret_key)
    listed = s3.list_objects_v2(Bucket=team_stack.dvc_bucket, Prefix="vae-mnist/")
    keys = [item["Key"] for item in listed.get("Contents", [])]
    assert len(keys) == 1, keys
    assert s3.get_object(Bucket=team_stack.dvc_bucket, Key=keys[0])["Body"].read() == content


def test_a_taken_port_fails_naming_it_and_starts_nothing() -> None:
    require_stack_binaries()
    folder = stack_folder()
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        result = cli("up", "--folder", str(folder), *any_ports_args(), "--s3-port", str(port))
    assert result.returncode != 0
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"error: port {port} on 127.0.0.1 (the S3 gateway (radosgw))")
    assert "--s3-port" in result.stderr
    assert processes_of(folder) == []
    assert not (folder / "pids").exists()
    shutil.rmtree(folder)


def test_a_missing_ceph_binary_fails_naming_it(tmp_path: Path) -> None:
    folder = stack_folder()
    env = {**os.environ, "PATH": str(BIN)}  # the venv only: no /usr/bin, so no Ceph
    env["VAE_MNIST_STACK_PG_SEARCH"] = str(fake_postgres(tmp_path))
    result = cli("up", "--folder", str(folder), *any_ports_args(), env=env)
    assert result.returncode != 0
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: ceph-mon not found")
    assert "make stack-deps" in result.stderr
    assert "apt-get install -y --no-install-recommends ceph-mon" in result.stderr
    assert processes_of(folder) == []
    assert not (folder / "pids").exists()
    shutil.rmtree(folder)


def test_missing_postgres_fails_naming_it(tmp_path: Path) -> None:
    folder = stack_folder()
    env = {**os.environ, "PATH": str(BIN), "VAE_MNIST_STACK_PG_SEARCH": str(tmp_path / "*/bin")}
    result = cli("up", "--folder", str(folder), *any_ports_args(), env=env)
    assert result.returncode != 0
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: PostgreSQL's initdb not found")
    assert "apt-get install -y --no-install-recommends postgresql" in result.stderr
    assert not (folder / "pids").exists()
    shutil.rmtree(folder)


def test_down_stops_every_process_and_is_safe_twice() -> None:
    require_stack_binaries()
    folder = stack_folder()
    try:
        stack = up(folder, ports=ANY_PORTS)
        # The server's process died (OOM killer, say) and left its uvicorn worker serving: down
        # must stop the worker too.
        kill_and_wait(stack.pids["mlflow"])
        assert [line for line in processes_of(folder) if "uvicorn" in line]
        result = cli("down", "--folder", str(folder))
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == [
            f"stopped {service} (pid {stack.pids[service]})"
            for service in ["mlflow", "radosgw", "ceph-osd", "ceph-mon", "postgres"]
        ]
        assert processes_of(folder) == []
        assert (folder / "logs" / "mlflow.log").stat().st_size > 0  # logs stay

        again = cli("down", "--folder", str(folder))
        assert again.returncode == 0, again.stderr
        assert again.stdout.strip() == "nothing to stop"
        assert down(folder) == {}
        assert cli("status", "--folder", str(folder)).returncode == 1
    finally:
        down(folder)
        assert processes_of(folder) == []
    shutil.rmtree(folder)  # kept, with its logs, when the test fails


def test_a_service_that_does_not_come_up_stops_the_rest_and_up_starts_afresh() -> None:
    require_stack_binaries()
    folder = stack_folder()
    try:
        with pytest.raises(StackError) as failure:
            up(folder, ports=ANY_PORTS, timeouts_s={"radosgw": 0.001})
        message = str(failure.value)
        assert "\n" not in message
        assert message.startswith("radosgw did not come up within 0.001 s: see ")
        assert message.endswith(str(folder / "logs" / "radosgw.log"))
        assert processes_of(folder) == []
        assert not any((folder / "pids").iterdir())

        # The failed attempt left a cluster, a monitor store, logs: up wipes them and starts anew.
        stack = up(folder, ports=ANY_PORTS)
        assert status(folder) == dict.fromkeys(SERVICES, True)
        assert read(folder) == stack
    finally:
        down(folder)
        assert processes_of(folder) == []
    shutil.rmtree(folder)  # kept, with its logs, when the test fails
