"""Ports on this machine: the defaults of the servers the project starts for its user, and free
ones for the others (local training workers, the team stack's services, the tests' and
benchmarks' own servers)."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Collection

LOCALHOST = "127.0.0.1"
# The default ports of the servers the project starts for its user, on LOCALHOST: the Makefile's
# targets and the docs say what these say (a test holds them to it).
UI_PORT = 5000  # make ui: the MLflow UI on the project's store
SERVE_PORT = 5001  # make serve: the champion's /invocations
EXPLORER_PORT = 5002  # make explore: the latent-space explorer


def free_ports(count: int, host: str = LOCALHOST, avoid: Collection[int] = ()) -> list[int]:
    """`count` different ports on `host` that nothing listens on now, none in `avoid`: held open
    together so that they differ, then released for the servers to take (a race only with
    another process that binds an ephemeral port in between)."""
    with contextlib.ExitStack() as held:
        ports: list[int] = []
        while len(ports) < count:
            probe = held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            probe.bind((host, 0))
            if (port := probe.getsockname()[1]) not in avoid:
                ports.append(port)
    return ports


def free_port(host: str = LOCALHOST, avoid: Collection[int] = ()) -> int:
    return free_ports(1, host, avoid)[0]
