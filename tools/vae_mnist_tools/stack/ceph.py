"""A single-node Ceph cluster whose RADOS Gateway is the stack's S3 server.

One monitor, one OSD and one gateway, all on 127.0.0.1, with every file they write (config,
keyring, monitor store, admin sockets, logs) inside the stack folder, so nothing lands in
/etc/ceph or /var/lib/ceph. What was learnt getting there:

- cephx, not `auth ... = none`: without it the gateway hangs forever at start
  ("get_initial_auth_request returned -13"). Every key (monitor, admin, OSD, gateway) is in the
  keyring before `ceph-mon --mkfs`, which imports them all; no `ceph auth` round trips later.
- `public addr` and `cluster addr` = 127.0.0.1: without the latter the OSD binds 0.0.0.0.
- A memstore OSD (objects in the OSD's RAM) boots in seconds and needs no disk; its default
  1 GiB is too small for a DVC push of the dataset plus MLflow artifacts.
- One OSD holds every placement group: pool size 1, 8 PGs a pool, autoscaler off.
"""

from __future__ import annotations

import json
import socket
import struct
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

from vae_mnist_tools.stack.processes import HOST, Spawned, run, spawn, wait_for

MON_ID = "a"
OSD_ID = "0"
GATEWAY = "client.rgw.gw"
ADMIN = "client.admin"
S3_USER = "vae-mnist"
S3_REGION = "us-east-1"
OSD_BYTES = 8 << 30  # a capacity, not an allocation: memory is used as objects arrive

KEYS = {
    "mon.": {"mon": "allow *"},
    ADMIN: {"mon": "allow *", "osd": "allow *", "mgr": "allow *"},
    f"osd.{OSD_ID}": {"mon": "allow profile osd", "osd": "allow *", "mgr": "allow profile osd"},
    GATEWAY: {"mon": "allow rw", "osd": "allow rwx"},
}


@dataclass(frozen=True)
class Cluster:
    binaries: dict[str, str]
    folder: Path  # <stack>/ceph
    logs: Path
    mon_port: int
    s3_port: int

    @property
    def conf(self) -> Path:
        return self.folder / "ceph.conf"

    @property
    def keyring(self) -> Path:
        return self.folder / "keyring"

    def admin_socket(self, name: str) -> Path:
        return self.folder / "run" / f"{name}.asok"

    def tool(self, name: str, *args: str) -> list[str]:
        """A Ceph command line against this cluster's config, as client.admin."""
        return [self.binaries[name], "--conf", str(self.conf), *args]


def _config(cluster: Cluster, fsid: str) -> str:
    folder, logs = cluster.folder, cluster.logs
    return f"""\
[global]
fsid = {fsid}
mon host = [v2:{HOST}:{cluster.mon_port}]
public addr = {HOST}
cluster addr = {HOST}
ms bind ipv6 = false
ms bind msgr1 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = {cluster.keyring}
run dir = {folder}/run
crash dir = {folder}/crash
pid file = {folder}/run/$name.pid
log file = {logs}/ceph-$name.log
log to stderr = false
mon cluster log file = {logs}/ceph-cluster.log
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000

[mon]
mon data = {folder}/mon/$cluster-$id
admin socket = {folder}/run/$name.asok
log file = {logs}/ceph-mon.log

[osd]
osd data = {folder}/osd/$cluster-$id
osd objectstore = memstore
memstore device bytes = {OSD_BYTES}
admin socket = {folder}/run/$name.asok
log file = {logs}/ceph-osd.log

[{GATEWAY}]
rgw frontends = beast endpoint={HOST}:{cluster.s3_port}
rgw data = {folder}/rgw
rgw thread pool size = 32
admin socket = {folder}/run/$name.asok
log file = {logs}/radosgw.log
"""


def initialise(
    binaries: dict[str, str], folder: Path, logs: Path, mon_port: int, s3_port: int
) -> Cluster:
    """Config, keyring and monitor store: what `ceph-mon` needs to start."""
    cluster = Cluster(binaries, folder, logs, mon_port, s3_port)
    fsid = str(uuid.uuid4())
    for sub in ("run", "crash", "rgw", f"mon/ceph-{MON_ID}", f"osd/ceph-{OSD_ID}"):
        (folder / sub).mkdir(parents=True, mode=0o700)
    cluster.conf.write_text(_config(cluster, fsid))
    log = logs / "ceph-setup.log"
    for entity, capabilities in KEYS.items():
        caps = [arg for service, cap in capabilities.items() for arg in ("--cap", service, cap)]
        create = ["--create-keyring"] if entity == "mon." else []
        run(
            [binaries["ceph-authtool"], str(cluster.keyring), *create, "-g", "-n", entity, *caps],
            what=f"ceph-authtool ({entity})",
            log=log,
        )
    cluster.keyring.chmod(0o600)
    monmap = folder / "monmap"
    run(
        [
            binaries["monmaptool"],
            "--create",
            "--enable-all-features",
            "--fsid",
            fsid,
            "--addv",
            MON_ID,
            f"[v2:{HOST}:{mon_port}]",
            str(monmap),
        ],
        what="monmaptool",
        log=log,
    )
    run(
        cluster.tool("ceph-mon", "--mkfs", "--id", MON_ID, "--monmap", str(monmap)),
        what="ceph-mon --mkfs",
        log=log,
    )
    return cluster


def admin_socket_command(path: Path, prefix: str) -> dict[str, object]:
    """A daemon's admin socket: a JSON command and a NUL out, a 4-byte length and JSON back."""
    with socket.socket(socket.AF_UNIX) as connection:
        connection.settimeout(5)
        connection.connect(str(path))
        connection.sendall(json.dumps({"prefix": prefix}).encode() + b"\0")
        data = b""
        while len(data) < 4:
            chunk = connection.recv(4 - len(data))
            if not chunk:
                raise ConnectionError("admin socket closed")
            data += chunk
        (length,) = struct.unpack(">I", data)
        payload = b""
        while len(payload) < length:
            chunk = connection.recv(length - len(payload))
            if not chunk:
                raise ConnectionError("admin socket closed")
            payload += chunk
    return json.loads(payload)


def _daemon(cluster: Cluster, stack: Path, service: str, *args: str) -> Spawned:
    """A Ceph daemon in the foreground, so that the PID recorded is the daemon's own."""
    return spawn(
        service,
        cluster.tool(service, "--foreground", *args),
        folder=stack,
        log=cluster.logs / f"{service}.log",
        cwd=cluster.folder,
    )


def _wait_state(
    cluster: Cluster, spawned: Spawned, daemon: str, command: str, state: str, timeout_s: float
) -> None:
    """Until the daemon's admin socket reports `state` for `command`."""

    def ready() -> bool:
        return admin_socket_command(cluster.admin_socket(daemon), command).get("state") == state

    wait_for(spawned, ready, timeout_s)


def start_mon(cluster: Cluster, stack: Path) -> Spawned:
    return _daemon(cluster, stack, "ceph-mon", "--id", MON_ID)


def wait_mon(cluster: Cluster, spawned: Spawned, timeout_s: float) -> None:
    _wait_state(cluster, spawned, f"mon.{MON_ID}", "mon_status", "leader", timeout_s)


def start_osd(cluster: Cluster, stack: Path) -> Spawned:
    """Register osd.0 with the monitor, create its (memory) store, start it."""
    log = cluster.logs / "ceph-osd.log"
    osd_uuid = str(uuid.uuid4())
    new_osd = ("osd", "new", osd_uuid, OSD_ID)
    run(
        cluster.tool("ceph", "--name", ADMIN, "--connect-timeout", "30", *new_osd),
        what="ceph osd new",
        log=log,
    )
    run(
        cluster.tool("ceph-osd", "--mkfs", "--id", OSD_ID, "--osd-uuid", osd_uuid),
        what="ceph-osd --mkfs",
        log=log,
    )
    return _daemon(cluster, stack, "ceph-osd", "--id", OSD_ID)


def wait_osd(cluster: Cluster, spawned: Spawned, timeout_s: float) -> None:
    _wait_state(cluster, spawned, f"osd.{OSD_ID}", "status", "active", timeout_s)


def start_gateway(cluster: Cluster, stack: Path) -> Spawned:
    return _daemon(cluster, stack, "radosgw", "--name", GATEWAY)


def endpoint(cluster: Cluster) -> str:
    return f"http://{HOST}:{cluster.s3_port}"


def wait_gateway(cluster: Cluster, spawned: Spawned, timeout_s: float) -> None:
    def ready() -> bool:
        try:
            with urllib.request.urlopen(endpoint(cluster), timeout=3) as response:
                return response.status == 200
        except urllib.error.HTTPError:  # any S3 answer (403 too) means the gateway is serving
            return True

    wait_for(spawned, ready, timeout_s)


def create_user(cluster: Cluster) -> tuple[str, str]:
    """The gateway's one user, with keys the gateway generates: (access key, secret key).

    Generated there and read from its output (never logged), so that no key is ever on a
    command line, which every local user can read."""
    printed = run(
        cluster.tool(
            "radosgw-admin",
            *("--name", ADMIN, "user", "create", "--uid", S3_USER),
            *("--display-name", "vae-mnist team stack", "--gen-access-key", "--gen-secret"),
        ),
        what="radosgw-admin user create",
        log=cluster.logs / "ceph-setup.log",
        secret_output=True,
    )
    (keys,) = json.loads(printed)["keys"]
    return keys["access_key"], keys["secret_key"]


def s3_client(endpoint_url: str, access_key: str, secret_key: str):  # -> botocore's S3 client
    """A boto3 S3 client for the gateway (path-style addressing: no DNS names for buckets)."""
    # boto3 takes a second to load: only when the buckets are made
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name=S3_REGION,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
    )


def create_buckets(endpoint_url: str, access_key: str, secret_key: str, *names: str) -> None:
    client = s3_client(endpoint_url, access_key, secret_key)
    for name in names:
        client.create_bucket(Bucket=name)
