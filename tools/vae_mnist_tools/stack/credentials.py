"""The stack's secrets: generated at `up`, kept in 0600 files under `<stack>/secrets/`, never shown.

Who needs a secret reads its file: the server gets its own through its environment (never its
command line, which every local user can read), a user exports `MLFLOW_TRACKING_PASSWORD` from
the file (`make stack-up` prints the line, not the password), DVC reads the S3 keys through
`credentialpath`. Nothing here is printed, logged or recorded in MLflow.
"""

from __future__ import annotations

import configparser
import io
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

FOLDER = "secrets"
ADMIN = "admin"  # the server's first user, an MLflow admin: it manages the others
PASSWORD_SUFFIX = ".password"
AWS_PROFILE = "default"


@dataclass(frozen=True)
class Files:
    folder: Path

    def password(self, user: str) -> Path:
        return self.folder / f"{user}{PASSWORD_SUFFIX}"

    @property
    def flask_key(self) -> Path:
        """The key that signs the UI's session cookies: a new one logs everyone out."""
        return self.folder / "flask-secret-key"

    @property
    def s3_credentials(self) -> Path:
        """The gateway's keys as an AWS shared-credentials file (DVC's `credentialpath`)."""
        return self.folder / "s3-credentials"

    @property
    def sweep_storage(self) -> Path:
        """The sweeps' study database as a SQLAlchemy URL (studies.STORAGE_ENV), password in it."""
        return self.folder / "sweep-storage"

    @property
    def auth_config(self) -> Path:
        """The basic-auth app's configuration: it names its database, password included."""
        return self.folder / "basic-auth.ini"


def files(stack: Path) -> Files:
    return Files(stack / FOLDER)


def write_private(path: Path, content: bytes | str) -> None:
    """Write `content` to `path` readable by its owner only, whole or not at all."""
    data = content.encode() if isinstance(content, str) else content
    staging = path.with_name(f".{path.name}.tmp")
    staging.unlink(missing_ok=True)
    descriptor = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as stream:
        stream.write(data)
    os.replace(staging, path)


def new_password() -> str:
    return secrets.token_urlsafe(24)


def create(stack: Path, *, auth_database_uri: str) -> Files:
    """Generate the admin's password and the cookie key, and keep the auth app's configuration
    beside them; return where they are (the gateway's keys come later: keep_s3_keys)."""
    found = files(stack)
    found.folder.mkdir(mode=0o700)
    write_private(found.password(ADMIN), new_password() + "\n")
    write_private(found.flask_key, secrets.token_hex(32) + "\n")
    write_private(found.auth_config, _ini({"mlflow": {
        # A user the admin has given no role sees nothing.
        "default_permission": "NO_PERMISSIONS",
        "database_uri": auth_database_uri,
        "admin_username": ADMIN,
        "authorization_function": "mlflow.server.auth:authenticate_request_basic_auth",
        "grant_default_workspace_access": "false",
        # Each request's password is checked by PBKDF2, slow by design: uncached, the stages'
        # many small calls made the server CPU-bound (the team tests ran 2-4x slower). The
        # cache is per worker and the server runs one, which drops an entry at once when its
        # password changes or its user is removed: nothing stale is ever let in.
        "auth_cache_ttl_seconds": "300",
    }}))  # fmt: skip
    return found


def keep_sweep_storage(found: Files, url: str) -> None:
    write_private(found.sweep_storage, url + "\n")


def keep_s3_keys(found: Files, access_key: str, secret_key: str) -> None:
    """The gateway's keys, as the AWS shared-credentials file that the server and DVC read."""
    write_private(found.s3_credentials, _ini({AWS_PROFILE: {
        "aws_access_key_id": access_key, "aws_secret_access_key": secret_key,
    }}))  # fmt: skip


def read(path: Path) -> str:
    return path.read_text().strip()


def _ini(sections: dict[str, dict[str, str]]) -> str:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_dict(sections)
    text = io.StringIO()
    parser.write(text)
    return text.getvalue()
