"""`vae-mnist stack up|down|status|env|user`: the local team stack from the command line."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import click

from vae_mnist.common.errors import StackError
from vae_mnist_tools.stack import access, credentials
from vae_mnist_tools.stack.control import (
    DEFAULT_PORTS,
    PORT_NAMES,
    SERVICES,
    default_folder,
    down,
    running,
    status,
    up,
)
from vae_mnist_tools.stack.state import Stack, read

DESCRIPTION = """\
A throwaway team stack on 127.0.0.1: PostgreSQL, a one-node Ceph cluster whose RADOS Gateway
serves S3, and an `mlflow server` (HTTPS, users and passwords) storing runs in PostgreSQL and
artifacts in S3. Everything it writes (data, config, sockets, logs, PID files, its certificates,
its secrets in 0600 files) stays in the stack folder. `up` on a folder whose stack is not
running wipes what an earlier stack left there (its data, logs and state: the stack keeps
nothing) and builds a new one, with new credentials.
"""

FOLDER = click.option(
    "--folder",
    type=click.Path(path_type=Path),
    help="the stack's folder (default: .stack at the repository root)",
)


def _folder(folder: Path | None) -> Path:
    return folder.resolve() if folder else default_folder()


def _running_stack(folder: Path, need_all: bool = False) -> Stack:
    stack = read(folder)
    states = status(folder)
    if stack is None or not (all(states.values()) if need_all else states["mlflow"]):
        raise StackError(f"no running stack in {folder}: start it with `make stack-up`")
    return stack


def _print_env(stack: Stack) -> None:
    admin = stack.secrets.password(credentials.ADMIN)
    print(f"MLflow UI: {stack.ui_url} (user {credentials.ADMIN}, password in {admin})")
    print(f"its certificate is signed by the stack's own CA: {stack.ca}")
    print(
        f"# point MLflow and DVC at the stack; the secrets stay in {stack.secrets.folder} "
        "(mode 0600, new with every `up`); DVC's lines in the project's environment "
        "(source .venv/bin/activate):"
    )
    for line in stack.env_lines():
        print(line)


@click.group(help=DESCRIPTION)
def stack() -> None:
    """The local team stack: PostgreSQL, Ceph's S3 gateway and an mlflow server."""


def _port_options(command: Callable[..., None]) -> Callable[..., None]:
    """One --<name>-port option per service, defaults as control.DEFAULT_PORTS has them."""
    for key, port in reversed(DEFAULT_PORTS.items()):
        command = click.option(
            f"--{key}-port",
            type=int,
            default=port,
            show_default=True,
            help=f"port of {PORT_NAMES[key]} (0: any free port)",
        )(command)
    return command


@stack.command("up")
@FOLDER
@_port_options
def up_command(folder: Path | None, **ports: int) -> None:
    """Start the stack (wiping a stopped one) and print what to export."""
    folder = _folder(folder)
    chosen = {key: ports[f"{key}_port"] for key in DEFAULT_PORTS}
    if set(running(folder)) == set(SERVICES):
        print("the stack is already up")
    began = time.monotonic()
    started = up(folder, chosen)
    print(f"stack up in {started.folder} ({time.monotonic() - began:.0f} s)")
    _print_env(started)
    print(f"stop it with: vae-mnist stack down --folder {started.folder}")


@stack.command("down")
@FOLDER
def down_command(folder: Path | None) -> None:
    """Stop what `up` started, by PID (logs stay)."""
    stopped = down(_folder(folder))
    if not stopped:
        print("nothing to stop")
    for service, pid in stopped.items():
        print(f"stopped {service} (pid {pid})")


@stack.command("status")
@FOLDER
def status_command(folder: Path | None) -> None:
    """Each service up or down; exit 1 unless all are up."""
    folder = _folder(folder)
    found = read(folder)
    states, pids = status(folder), running(folder)
    addresses = {}
    if found is not None:
        addresses = {
            "postgres": f"127.0.0.1:{found.ports['postgres']}",
            "ceph-mon": f"127.0.0.1:{found.ports['mon']}",
            "radosgw": found.s3_endpoint,
            "mlflow": found.tracking_uri,
        }
    print(f"stack in {folder}")
    for service, is_up in states.items():
        detail = f"  pid {pids[service]}" if service in pids else ""
        if is_up and service in addresses:
            detail += f"  {addresses[service]}"
        print(f"  {service:<9} {'up' if is_up else 'down'}{detail}")
    if not all(states.values()):
        sys.exit(1)


@stack.command("env")
@FOLDER
def env_command(folder: Path | None) -> None:
    """Print again what `up` printed to export."""
    _print_env(_running_stack(_folder(folder), need_all=True))


@stack.group()
def user() -> None:
    """The server's users and their roles (as its admin)."""


def _logged_in_as(name: str, path: Path) -> None:
    print(f"they log in with: export MLFLOW_TRACKING_USERNAME={name}")
    print(f'                  export MLFLOW_TRACKING_PASSWORD="$(cat {path})"')


@user.command("add")
@FOLDER
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(access.ROLES))
def add_user(folder: Path | None, name: str, role: str) -> None:
    """A new user with a role; its password goes to a 0600 file."""
    path = access.add_user(_running_stack(_folder(folder)), name, role)
    print(f"added {name} as {role}; the password is in {path} (mode 0600)")
    _logged_in_as(name, path)


@user.command("list")
@FOLDER
def list_users(folder: Path | None) -> None:
    """Every user and its role."""
    for name, role in access.users(_running_stack(_folder(folder))).items():
        print(f"{name:<20} {role}")


@user.command("remove")
@FOLDER
@click.argument("name")
def remove_user(folder: Path | None, name: str) -> None:
    """Delete a user."""
    access.remove_user(_running_stack(_folder(folder)), name)
    print(f"removed {name}")


@user.command("reset")
@FOLDER
@click.argument("name")
def reset_user(folder: Path | None, name: str) -> None:
    """Give a user a new password (the old one stops working)."""
    path = access.reset_password(_running_stack(_folder(folder)), name)
    print(f"new password for {name} in {path} (mode 0600); the old one no longer works")
    _logged_in_as(name, path)
