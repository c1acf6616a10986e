"""What a running stack is: addresses, credentials, buckets, PIDs, kept as JSON in its folder.

`up` writes it once everything answers, so that `down`, `status` and `env` work from any later
process. It holds passwords and keys, so only its owner may read it; what a user is told to run
names the files the secrets are in (credentials.py), never a secret.
"""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vae_mnist.experiments.sweeps import STORAGE_ENV
from vae_mnist_tools.stack import credentials, tls

STATE_FILE = "stack.json"
DVC_REMOTE = "team"
DVC_PREFIX = "vae-mnist"


@dataclass(frozen=True)
class Stack:
    folder: Path
    tracking_uri: str  # the mlflow server: MLFLOW_TRACKING_URI for clients
    s3_endpoint: str
    access_key: str
    secret_key: str
    artifacts_bucket: str
    dvc_bucket: str
    postgres_uri: str  # postgresql://... for psycopg (MLflow's own database and role)
    ports: dict[str, int] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)

    @property
    def ui_url(self) -> str:
        return self.tracking_uri

    @property
    def dvc_remote_url(self) -> str:
        return f"s3://{self.dvc_bucket}/{DVC_PREFIX}"

    @property
    def ca(self) -> Path:
        """The stack CA's certificate: what a client trusts the server by."""
        return tls.paths(self.folder).ca

    @property
    def secrets(self) -> credentials.Files:
        return credentials.files(self.folder)

    def client_env(
        self, user: str = credentials.ADMIN, password: str | None = None
    ) -> dict[str, str]:
        """The environment of an MLflow client logged in as `user` (by default with the password
        the stack keeps for it)."""
        if password is None:
            password = credentials.read(self.secrets.password(user))
        return {
            "MLFLOW_TRACKING_URI": self.tracking_uri,
            "MLFLOW_TRACKING_SERVER_CERT_PATH": str(self.ca),
            "MLFLOW_TRACKING_USERNAME": user,
            "MLFLOW_TRACKING_PASSWORD": password,
            STORAGE_ENV: credentials.read(self.secrets.sweep_storage),
        }

    def dvc_lines(self) -> list[str]:
        """What points a clone's DVC at the stack's bucket (the keys stay in their file)."""
        q = shlex.quote
        return [
            f"dvc remote add -f -d {DVC_REMOTE} {q(self.dvc_remote_url)}",
            f"dvc remote modify {DVC_REMOTE} endpointurl {q(self.s3_endpoint)}",
            f"dvc remote modify --local {DVC_REMOTE} credentialpath "
            f"{q(str(self.secrets.s3_credentials))}",
        ]

    def env_lines(self, user: str = credentials.ADMIN) -> list[str]:
        """What a user runs to point MLflow and DVC at this stack (shell-quoted): the password
        is read from its file as the line runs, so it is never shown."""
        q = shlex.quote
        password = q(str(self.secrets.password(user)))
        return [
            f"export MLFLOW_TRACKING_URI={q(self.tracking_uri)}",
            f"export MLFLOW_TRACKING_SERVER_CERT_PATH={q(str(self.ca))}",
            f"export MLFLOW_TRACKING_USERNAME={q(user)}",
            f'export MLFLOW_TRACKING_PASSWORD="$(cat {password})"',
            f'export {STORAGE_ENV}="$(cat {q(str(self.secrets.sweep_storage))})"',
            *self.dvc_lines(),
        ]


def write(stack: Stack) -> None:
    data = asdict(stack)
    data["folder"] = str(stack.folder)
    path = stack.folder / STATE_FILE
    staging = path.with_suffix(".tmp")
    staging.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.chmod(staging, 0o600)
    os.replace(staging, path)


def read(folder: Path) -> Stack | None:
    """The stack `up` last completed in `folder` (running or not); None if there is none."""
    try:
        data = json.loads((Path(folder) / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    data["folder"] = Path(data["folder"])
    return Stack(**data)
