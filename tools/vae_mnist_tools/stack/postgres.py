"""A throwaway PostgreSQL cluster for MLflow's backend store.

PostgreSQL refuses to run as root, so as root the cluster belongs to the `postgres` user, and the
postmaster is spawned directly as that user: the recorded PID is the postmaster itself, which is
what `down` signals. Durability is off (fsync, synchronous commit): the cluster is rebuilt on every
`up`, and off it the schema MLflow creates on first start takes seconds, not tens of seconds.
"""

from __future__ import annotations

import os
import pwd
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from vae_mnist.common.errors import StackError
from vae_mnist_tools.stack.processes import HOST, Spawned, run, spawn, wait_for

SERVICE = "postgres"
SUPERUSER = "postgres"
MLFLOW_ROLE = "mlflow"
MLFLOW_DATABASE = "mlflow"
AUTH_DATABASE = "mlflow_auth"  # the basic-auth app's users and permissions
# Sweeps' Optuna studies (studies.py), shared by every clone: a role of their own, so that the
# URL a sweep needs gives no way into MLflow's databases (which only the server may touch).
SWEEPS_ROLE = SWEEPS_DATABASE = "sweeps"
SETTINGS = {
    "listen_addresses": f"'{HOST}'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "'32MB'",
    "max_connections": "50",
    "log_min_messages": "warning",
}


@dataclass(frozen=True)
class Cluster:
    bindir: Path
    folder: Path  # <stack>/postgres, owned by the user the server runs as
    port: int
    superuser_password: str
    user: str | None  # the OS user the server runs as; None: this process's own

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def sockets(self) -> Path:
        return self.folder / "run"


def os_user() -> str | None:
    """`postgres` when running as root (the server refuses root), else None: run as ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SUPERUSER)
    except KeyError:
        raise StackError(
            "running as root, and there is no `postgres` user to run PostgreSQL as: install "
            "the postgresql package (`make stack-deps`) or run the stack as a normal user"
        ) from None
    return SUPERUSER


def _check_reachable(folder: Path, user: str) -> None:
    """Every folder above the cluster must let `user` through, or initdb fails obscurely."""
    account = pwd.getpwnam(user)
    for parent in folder.parents:
        info = parent.stat()
        if info.st_uid == account.pw_uid:
            allowed = info.st_mode & stat.S_IXUSR
        elif info.st_gid == account.pw_gid:
            allowed = info.st_mode & stat.S_IXGRP
        else:
            allowed = info.st_mode & stat.S_IXOTH
        if not allowed:
            raise StackError(
                f"the `{user}` user cannot enter {parent}, so PostgreSQL cannot use "
                f"{folder}: choose a stack folder below world-searchable folders (or "
                f"`chmod o+x {parent}`)"
            )


def initialise(bindir: Path, folder: Path, port: int, log: Path) -> Cluster:
    """initdb a new cluster in `folder` (password auth only, 127.0.0.1 and its own socket)."""
    user = os_user()
    cluster = Cluster(bindir, folder, port, secrets.token_hex(16), user)
    folder.mkdir(mode=0o700)
    cluster.sockets.mkdir(mode=0o700)
    password_file = folder / "superuser-password"
    password_file.write_text(cluster.superuser_password + "\n")
    password_file.chmod(0o600)
    ids: dict[str, object] = {}
    if user is not None:
        _check_reachable(folder, user)
        account = pwd.getpwnam(user)
        for path in (folder, cluster.sockets, password_file):
            os.chown(path, account.pw_uid, account.pw_gid)
        ids = {"user": user, "group": user, "extra_groups": []}
    try:
        run(
            [
                str(bindir / "initdb"),
                "--pgdata",
                str(cluster.data),
                "--username",
                SUPERUSER,
                "--pwfile",
                str(password_file),
                "--auth",
                "scram-sha-256",
                "--encoding",
                "UTF8",
                "--locale",
                "C",
                "--no-sync",
            ],
            what="initdb",
            log=log,
            cwd=folder,
            **ids,
        )
    finally:
        password_file.unlink()
    settings = {**SETTINGS, "port": str(port), "unix_socket_directories": f"'{cluster.sockets}'"}
    with open(cluster.data / "postgresql.conf", "a") as conf:
        conf.write("\n# vae-mnist stack\n")
        conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
    # Password logins only: on the cluster's own socket and on 127.0.0.1, nothing else.
    (cluster.data / "pg_hba.conf").write_text(
        "local all all scram-sha-256\nhost all all 127.0.0.1/32 scram-sha-256\n"
    )
    return cluster


def start(cluster: Cluster, stack: Path, log: Path) -> Spawned:
    return spawn(
        SERVICE,
        [str(cluster.bindir / "postgres"), "-D", str(cluster.data)],
        folder=stack,
        log=log,
        cwd=cluster.folder,
        user=cluster.user,
    )


def _superuser_conninfo(cluster: Cluster, dbname: str = "postgres") -> dict[str, object]:
    return {
        "host": HOST,
        "port": cluster.port,
        "user": SUPERUSER,
        "password": cluster.superuser_password,
        "dbname": dbname,
        "connect_timeout": 3,
    }


def wait(cluster: Cluster, spawned: Spawned, timeout_s: float) -> None:
    # psycopg only when the database is used
    import psycopg

    def ready() -> bool:
        with psycopg.connect(**_superuser_conninfo(cluster)) as connection:  # type: ignore[arg-type]
            connection.execute("SELECT 1")
        return True

    wait_for(spawned, ready, timeout_s)


def create_mlflow_database(cluster: Cluster) -> tuple[str, str, str]:
    """A login role owning a database for MLflow's runs and one for its users: (role,
    password, the runs' database)."""
    # psycopg only when the database is used
    import psycopg
    from psycopg import sql

    password = secrets.token_hex(16)
    conninfo = _superuser_conninfo(cluster)
    with psycopg.connect(**conninfo, autocommit=True) as connection:  # type: ignore[arg-type]
        connection.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(MLFLOW_ROLE), sql.Literal(password)
            )
        )
        for database in (MLFLOW_DATABASE, AUTH_DATABASE):
            connection.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(database), sql.Identifier(MLFLOW_ROLE)
                )
            )
    return MLFLOW_ROLE, password, MLFLOW_DATABASE


def create_sweeps_database(cluster: Cluster) -> tuple[str, str, str]:
    """A login role owning a database for the sweeps' studies: (role, password, database)."""
    # psycopg only when the database is used
    import psycopg
    from psycopg import sql

    password = secrets.token_hex(16)
    with psycopg.connect(**_superuser_conninfo(cluster), autocommit=True) as connection:  # type: ignore[arg-type]
        connection.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(SWEEPS_ROLE), sql.Literal(password)
            )
        )
        connection.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(SWEEPS_DATABASE), sql.Identifier(SWEEPS_ROLE)
            )
        )
    return SWEEPS_ROLE, password, SWEEPS_DATABASE


def uri(role: str, password: str, database: str, port: int, driver: str = "") -> str:
    """postgresql://... (psycopg, libpq); driver="psycopg" gives SQLAlchemy's psycopg 3 form."""
    scheme = f"postgresql+{driver}" if driver else "postgresql"
    return f"{scheme}://{role}:{password}@{HOST}:{port}/{database}"
