"""What a running stack is: addresses, credentials, buckets, PIDs, kept as JSON in its folder.

`up` writes it once everything answers, so that `down`, `status` and `env` work from any later
process. It holds passwords and keys, so only its owner may read it.
"""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path

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

    def env_lines(self) -> list[str]:
        """What a user runs to point MLflow and DVC at this stack (shell-quoted)."""
        q = shlex.quote
        return [
            f"export MLFLOW_TRACKING_URI={q(self.tracking_uri)}",
            f"dvc remote add -f -d {DVC_REMOTE} {q(self.dvc_remote_url)}",
            f"dvc remote modify {DVC_REMOTE} endpointurl {q(self.s3_endpoint)}",
            f"dvc remote modify --local {DVC_REMOTE} access_key_id {q(self.access_key)}",
            f"dvc remote modify --local {DVC_REMOTE} secret_access_key {q(self.secret_key)}",
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
