"""Finding the Debian binaries the stack runs, before anything starts.

Debian keeps PostgreSQL's server binaries off PATH, in /usr/lib/postgresql/<version>/bin; the
highest version there is used unless PATH has `initdb`. `VAE_MNIST_STACK_PG_SEARCH` replaces that
search (colon-separated glob patterns), for a PostgreSQL built elsewhere, and for tests.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import sys
from pathlib import Path

from vae_mnist.common.errors import StackError

PG_SEARCH_ENV = "VAE_MNIST_STACK_PG_SEARCH"
PG_SEARCH_DEFAULT = "/usr/lib/postgresql/*/bin"

# binary -> the Debian package that holds it
CEPH_BINARIES = {
    "ceph-mon": "ceph-mon",
    "ceph-osd": "ceph-osd",
    "radosgw": "radosgw",
    "radosgw-admin": "ceph-common",
    "ceph-authtool": "ceph-common",
    "monmaptool": "ceph-base",
    "ceph": "ceph-common",
}


def missing(binary: str, package: str) -> StackError:
    return StackError(
        f"{binary} not found: install the stack's Debian packages with `make stack-deps` (as "
        f"root), or `apt-get install -y --no-install-recommends {package}`"
    )


def _version(path: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", path))


def postgres_bindir() -> Path:
    """The folder holding `initdb` and `postgres`: PATH first, then the highest Debian version."""
    if initdb := shutil.which("initdb"):
        folder = Path(initdb).resolve().parent
        if (folder / "postgres").is_file():
            return folder
    patterns = os.environ.get(PG_SEARCH_ENV, PG_SEARCH_DEFAULT).split(os.pathsep)
    found = [hit for pattern in patterns if pattern for hit in glob.glob(pattern)]
    for folder in sorted(found, key=_version, reverse=True):
        if all(os.access(Path(folder) / name, os.X_OK) for name in ("initdb", "postgres")):
            return Path(folder)
    raise missing("PostgreSQL's initdb", "postgresql")


def ceph_binaries() -> dict[str, str]:
    """Name -> absolute path of every Ceph tool the stack uses."""
    paths = {}
    for binary, package in CEPH_BINARIES.items():
        path = shutil.which(binary)
        if path is None:
            raise missing(binary, package)
        paths[binary] = path
    return paths


def mlflow_binary() -> Path:
    """The venv's `mlflow`, beside the running interpreter (not whichever is on PATH)."""
    path = Path(sys.executable).parent / "mlflow"
    if not path.is_file():
        raise StackError(f"{path} not found: create the environment with `make env`")
    return path
