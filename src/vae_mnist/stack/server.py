"""The `mlflow server`: runs in PostgreSQL, artifacts proxied into the gateway's bucket.

Proxied artifacts (`--artifacts-destination s3://...`) mean clients upload through the server and
hold no S3 credentials; only the server's environment has them. The database URI (it holds a
password) goes through the environment too, not the command line, which every local user can read.
"""

from __future__ import annotations

import os
import sys
import urllib.request
from pathlib import Path

from vae_mnist.stack.processes import HOST, Spawned, spawn, wait_for

SERVICE = "mlflow"
# Inherited settings that would point the server's S3 client or store elsewhere.
DROPPED_ENV = (
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_PROFILE",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
)


def url(port: int) -> str:
    return f"http://{HOST}:{port}"


def start(
    mlflow: Path,
    *,
    stack: Path,
    log: Path,
    port: int,
    backend_store_uri: str,
    artifacts_bucket: str,
    s3_endpoint: str,
    access_key: str,
    secret_key: str,
) -> Spawned:
    """One uvicorn worker, no job runner: the idle server stays at two processes."""
    env = {key: value for key, value in os.environ.items() if key not in DROPPED_ENV}
    env.update(
        {
            # The server starts `uvicorn` by name: the venv's, not whatever PATH finds first.
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
            "MLFLOW_BACKEND_STORE_URI": backend_store_uri,
            "MLFLOW_S3_ENDPOINT_URL": s3_endpoint,
            "AWS_ACCESS_KEY_ID": access_key,
            "AWS_SECRET_ACCESS_KEY": secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
            # Otherwise the server starts job-runner workers: ~10 processes, ~2.5 GB resident.
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            # A gateway that is down fails each proxied request at once rather than after
            # botocore's five attempts with backoff: clients retry on the 500 themselves, and a
            # stage then fails in seconds (seen: 26 s for one request with the default).
            "AWS_MAX_ATTEMPTS": "2",
        }
    )
    command = [str(mlflow), "server", "--host", HOST, "--port", str(port), "--workers", "1"]
    command += ["--artifacts-destination", f"s3://{artifacts_bucket}"]
    return spawn(SERVICE, command, folder=stack, log=log, env=env, cwd=stack)


def healthy(port: int) -> bool:
    with urllib.request.urlopen(f"{url(port)}/health", timeout=3) as response:
        return response.status == 200


def wait(spawned: Spawned, port: int, timeout_s: float) -> None:
    wait_for(spawned, lambda: healthy(port), timeout_s)
