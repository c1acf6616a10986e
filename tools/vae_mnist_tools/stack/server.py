"""The `mlflow server`: MLflow's basic-auth app over HTTPS, runs in PostgreSQL, artifacts
proxied into the gateway's bucket.

Every request but `/health` needs a user's password (the app's users live in their own database
of the stack's PostgreSQL); the server speaks only TLS, with the stack's own certificate, and
answers only to the Host names it is reached by (`--allowed-hosts`). Proxied artifacts
(`--artifacts-destination s3://...`) mean clients upload through the server and hold no S3
credentials. Secrets reach the server through its environment and 0600 files, never its command
line, which every local user can read.
"""

from __future__ import annotations

import os
import ssl
import sys
import urllib.request
from pathlib import Path

from vae_mnist_tools.stack import credentials, tls
from vae_mnist_tools.stack.processes import HOST, Spawned, spawn, wait_for

SERVICE = "mlflow"
# Inherited settings that would point the server's S3 client or store elsewhere (AWS keys in the
# environment would win over its credentials file).
DROPPED_ENV = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_PROFILE",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
)


APP = "basic-auth"


def url(port: int) -> str:
    return f"https://{HOST}:{port}"


def allowed_hosts(port: int) -> str:
    """The Host headers the server answers: its own addresses, as the certificate names them."""
    return ",".join(f"{name}:{port}" for name in (*tls.ADDRESSES, *tls.NAMES))


def start(
    mlflow: Path,
    *,
    stack: Path,
    log: Path,
    port: int,
    backend_store_uri: str,
    artifacts_bucket: str,
    s3_endpoint: str,
    secrets: credentials.Files,
    certificates: tls.Certificates,
) -> Spawned:
    """One uvicorn worker, no job runner: the idle server stays at two processes."""
    env = {key: value for key, value in os.environ.items() if key not in DROPPED_ENV}
    env.update(
        {
            # The server starts `uvicorn` by name: the venv's, not whatever PATH finds first.
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
            "MLFLOW_BACKEND_STORE_URI": backend_store_uri,
            "MLFLOW_S3_ENDPOINT_URL": s3_endpoint,
            "AWS_SHARED_CREDENTIALS_FILE": str(secrets.s3_credentials),
            "MLFLOW_AUTH_CONFIG_PATH": str(secrets.auth_config),
            # Read at the first start only, to create the admin in the auth database.
            "MLFLOW_AUTH_ADMIN_PASSWORD": credentials.read(secrets.password(credentials.ADMIN)),
            "MLFLOW_FLASK_SERVER_SECRET_KEY": credentials.read(secrets.flask_key),
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
    command += ["--app-name", APP, "--allowed-hosts", allowed_hosts(port)]
    command += [
        "--uvicorn-opts",
        f"--ssl-keyfile {certificates.key} --ssl-certfile {certificates.certificate}",
    ]
    return spawn(SERVICE, command, folder=stack, log=log, env=env, cwd=stack)


def trusting(ca: Path) -> ssl.SSLContext:
    """A TLS context that trusts the stack's CA (and only it)."""
    return ssl.create_default_context(cafile=str(ca))


def healthy(port: int, ca: Path) -> bool:
    """`/health` answers over TLS with the stack's certificate (it needs no password)."""
    with urllib.request.urlopen(f"{url(port)}/health", timeout=3, context=trusting(ca)) as answer:
        return answer.status == 200


def wait(spawned: Spawned, port: int, ca: Path, timeout_s: float) -> None:
    wait_for(spawned, lambda: healthy(port, ca), timeout_s)
