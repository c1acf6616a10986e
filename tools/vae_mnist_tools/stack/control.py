"""Bringing the whole stack up, reporting on it, and taking down exactly what was brought up.

`up` checks everything it can before it starts anything (binaries, ports, socket path lengths),
then starts the services in an order that overlaps their waits, and on any failure stops what this
call started, by PID. The stack is throwaway: `up` on a folder whose stack is not running wipes
what a previous stack left there (only the entries it creates) and builds a new one.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
from collections.abc import Mapping
from pathlib import Path

from filelock import FileLock

from vae_mnist.common.config import project_root
from vae_mnist.common.errors import StackError
from vae_mnist.common.ports import free_port
from vae_mnist_tools.stack import access, binaries, ceph, credentials, postgres, server, tls
from vae_mnist_tools.stack.processes import (
    Spawned,
    answers,
    group_members,
    ours,
    pid_file,
    port_free,
    read_pid_file,
    stop,
)
from vae_mnist_tools.stack.state import STATE_FILE, Stack, read, write

SERVICES = ("postgres", "ceph-mon", "ceph-osd", "radosgw", "mlflow")
STOP_ORDER = ("mlflow", "radosgw", "ceph-osd", "ceph-mon", "postgres")
# PostgreSQL's SIGTERM waits for every client to disconnect; SIGINT is its fast shutdown.
STOP_SIGNALS = {"postgres": signal.SIGINT}
GROUPS = {"mlflow"}  # stopped with their whole process group (the uvicorn worker)

DEFAULT_PORTS = {"mlflow": 5050, "postgres": 5433, "s3": 7480, "mon": 3390}
PORT_NAMES = {
    "mlflow": "the mlflow server",
    "postgres": "PostgreSQL",
    "s3": "the S3 gateway (radosgw)",
    "mon": "the Ceph monitor",
}
# Generous: about 20 s in all on an idle 2-core machine, several times that on a busy one.
TIMEOUTS_S = {
    "postgres": 60.0,
    "ceph-mon": 60.0,
    "ceph-osd": 90.0,
    "radosgw": 120.0,
    "mlflow": 180.0,
}
ARTIFACTS_BUCKET = "vae-mnist-mlflow"
DVC_BUCKET = "vae-mnist-dvc"
WIPED = (STATE_FILE, "pids", "logs", "postgres", "ceph", credentials.FOLDER, tls.FOLDER)
# The longest Unix socket path below the folder (PostgreSQL's lock file beside its socket);
# Linux allows 107 bytes.
LONGEST_SOCKET = "/postgres/run/.s.PGSQL.65535.lock"


def default_folder() -> Path:
    """`.stack/` at the repository root (config.project_root)."""
    return project_root() / ".stack"


def _folder(folder: Path | str | None) -> Path:
    return default_folder() if folder is None else Path(folder).resolve()


def running(folder: Path | str | None = None) -> dict[str, int]:
    """Service -> PID, for the services of this folder's stack whose process is still ours."""
    folder = _folder(folder)
    return {service: pid for service in SERVICES if (pid := ours(folder, service))}


def status(folder: Path | str | None = None) -> dict[str, bool]:
    """Service -> up: its process is the one `up` started and its port answers."""
    folder = _folder(folder)
    pids = running(folder)
    stack = read(folder)
    ports = stack.ports if stack else {}
    probes = {"postgres": "postgres", "ceph-mon": "mon", "radosgw": "s3", "mlflow": "mlflow"}
    result = {}
    for service in SERVICES:
        port = ports.get(probes.get(service, ""))
        result[service] = service in pids and (port is None or answers(port))
    return result


def _check_ports(requested: Mapping[str, int]) -> dict[str, int]:
    """The ports to use: each requested one free, 0 replaced by any free port."""
    unknown = set(requested) - set(DEFAULT_PORTS)
    if unknown:
        raise ValueError(f"unknown ports {sorted(unknown)}; known: {sorted(DEFAULT_PORTS)}")
    ports = {**DEFAULT_PORTS, **requested}
    seen: dict[int, str] = {}
    for key, port in ports.items():
        flag = f"--{key}-port"
        if port and port in seen:
            raise StackError(
                f"port {port} is asked for both {PORT_NAMES[seen[port]]} and {PORT_NAMES[key]}: "
                f"choose another with {flag}"
            )
        if port and not port_free(port):
            raise StackError(
                f"port {port} on 127.0.0.1 ({PORT_NAMES[key]}) is in use: choose another with "
                f"{flag} (make stack-up STACK_{key.upper()}_PORT=...), or 0 for any free port"
            )
        seen[port] = key
    chosen = [p for p in ports.values() if p]
    for key, port in ports.items():
        if not port:
            ports[key] = free_port(avoid=chosen)
            chosen.append(ports[key])
    return ports


def _wipe(folder: Path) -> None:
    """Remove what an earlier stack left, and only that: the folder may hold other files."""
    for name in WIPED:
        path = folder / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def _prepare_folder(folder: Path) -> None:
    if len(str(folder) + LONGEST_SOCKET) > 107:
        raise StackError(
            f"{folder} is too long a path for the stack's Unix sockets: choose a shorter --folder"
        )
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0 and folder.stat().st_uid == 0:
        # PostgreSQL runs as `postgres` and must pass through to its own folder inside.
        folder.chmod(stat.S_IMODE(folder.stat().st_mode) | stat.S_IXOTH)


def up(
    folder: Path | str | None = None,
    ports: Mapping[str, int] | None = None,
    timeouts_s: Mapping[str, float] | None = None,
    project: access.Project | None = None,
) -> Stack:
    """Start PostgreSQL, Ceph (mon, OSD, S3 gateway) and the mlflow server; return the stack.

    `ports`: any of mlflow, postgres, s3, mon (defaults in DEFAULT_PORTS; 0: any free port).
    `project`: the experiment and models the server governs (default: this project's).
    A stack already fully running in `folder` is returned as it is; a partly running one is an
    error (run `down` first); anything else in the folder from an earlier stack is wiped.
    """
    folder = _folder(folder)
    timeouts = {**TIMEOUTS_S, **(timeouts_s or {})}
    _prepare_folder(folder)
    with FileLock(folder / "stack.lock"):
        alive = running(folder)
        if alive:
            existing = read(folder)
            if existing is not None and set(alive) == set(SERVICES):
                return existing
            raise StackError(
                f"the stack in {folder} is partly running ({', '.join(alive)}): stop it with "
                f"`vae-mnist stack down --folder {folder}` (make stack-down) first"
            )
        pg_bindir = binaries.postgres_bindir()
        postgres.os_user()  # as root: the `postgres` user must exist
        ceph_binaries = binaries.ceph_binaries()
        mlflow = binaries.mlflow_binary()
        chosen = _check_ports(ports or {})
        names = project or access.project()
        _wipe(folder)
        started: list[Spawned] = []
        try:
            stack = _start(folder, chosen, timeouts, pg_bindir, ceph_binaries, mlflow, started)
            access.govern(stack, names)
            write(stack)
            return stack
        except BaseException:
            for spawned in reversed(started):
                stop_service(folder, spawned.service)
            raise


def _start(
    folder: Path,
    ports: dict[str, int],
    timeouts: dict[str, float],
    pg_bindir: Path,
    ceph_binaries: dict[str, str],
    mlflow: Path,
    started: list[Spawned],
) -> Stack:
    """Start the services, overlapping their waits; append each to `started` as it starts."""
    logs = folder / "logs"
    logs.mkdir(mode=0o700)

    cluster = ceph.initialise(ceph_binaries, folder / "ceph", logs, ports["mon"], ports["s3"])
    mon = ceph.start_mon(cluster, folder)
    started.append(mon)

    pg_log = logs / "postgres.log"
    database = postgres.initialise(pg_bindir, folder / "postgres", ports["postgres"], pg_log)
    pg = postgres.start(database, folder, pg_log)
    started.append(pg)

    ceph.wait_mon(cluster, mon, timeouts["ceph-mon"])
    osd = ceph.start_osd(cluster, folder)
    started.append(osd)

    postgres.wait(database, pg, timeouts["postgres"])
    role, password, dbname = postgres.create_mlflow_database(database)

    s3_endpoint = ceph.endpoint(cluster)
    auth_uri = postgres.uri(role, password, postgres.AUTH_DATABASE, ports["postgres"], "psycopg")
    keys = credentials.create(folder, auth_database_uri=auth_uri)
    sweeps = postgres.create_sweeps_database(database)
    credentials.keep_sweep_storage(keys, postgres.uri(*sweeps, ports["postgres"], "psycopg"))
    certificates = tls.create(folder)
    mlflow_server = server.start(
        mlflow,
        stack=folder,
        log=logs / "mlflow.log",
        port=ports["mlflow"],
        backend_store_uri=postgres.uri(role, password, dbname, ports["postgres"], "psycopg"),
        artifacts_bucket=ARTIFACTS_BUCKET,
        s3_endpoint=s3_endpoint,
        secrets=keys,
        certificates=certificates,
    )
    started.append(mlflow_server)

    ceph.wait_osd(cluster, osd, timeouts["ceph-osd"])
    gateway = ceph.start_gateway(cluster, folder)
    started.append(gateway)
    ceph.wait_gateway(cluster, gateway, timeouts["radosgw"])
    # The server reads the gateway's keys at its first artifact request, after `up` returns.
    access_key, secret_key = ceph.create_user(cluster)
    credentials.keep_s3_keys(keys, access_key, secret_key)
    ceph.create_buckets(s3_endpoint, access_key, secret_key, ARTIFACTS_BUCKET, DVC_BUCKET)

    server.wait(mlflow_server, ports["mlflow"], certificates.ca, timeouts["mlflow"])
    stack = Stack(
        folder=folder,
        tracking_uri=server.url(ports["mlflow"]),
        s3_endpoint=s3_endpoint,
        access_key=access_key,
        secret_key=secret_key,
        artifacts_bucket=ARTIFACTS_BUCKET,
        dvc_bucket=DVC_BUCKET,
        postgres_uri=postgres.uri(role, password, dbname, ports["postgres"]),
        ports=ports,
        pids={spawned.service: spawned.pid for spawned in started},
    )
    return stack


def stop_service(folder: Path, service: str) -> int | None:
    """Stop the service's process (and its group) if it is still ours; its PID, or None."""
    recorded = read_pid_file(folder, service)
    if recorded is None:
        return None
    pid = ours(folder, service)
    group = service in GROUPS
    if pid is None and group and group_members(recorded[0], folder):
        pid = recorded[0]  # the leader is gone, its workers are not
    if pid is not None:
        stop(pid, folder, sig=STOP_SIGNALS.get(service, signal.SIGTERM), group=group)
    pid_file(folder, service).unlink(missing_ok=True)
    return pid


def down(folder: Path | str | None = None) -> dict[str, int]:
    """Stop the stack's processes, by PID, and only those; service -> PID of what was stopped.

    Logs and the state file stay; running it again stops nothing and is not an error.
    """
    folder = _folder(folder)
    stopped = {}
    for service in STOP_ORDER:
        pid = stop_service(folder, service)
        if pid is not None:
            stopped[service] = pid
    return stopped
