"""`python -m vae_mnist_tools.stack up|down|status|env`: the local team stack from the command line."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from vae_mnist.common.errors import StackError, reports_errors
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


def _users(stack: Stack, args: argparse.Namespace) -> int:
    if args.action == "list":
        for name, role in access.users(stack).items():
            print(f"{name:<20} {role}")
        return 0
    if args.action == "remove":
        access.remove_user(stack, args.name)
        print(f"removed {args.name}")
        return 0
    if args.action == "add":
        path = access.add_user(stack, args.name, args.role)
        print(f"added {args.name} as {args.role}; the password is in {path} (mode 0600)")
    else:
        path = access.reset_password(stack, args.name)
        print(f"new password for {args.name} in {path} (mode 0600); the old one no longer works")
    print(f"they log in with: export MLFLOW_TRACKING_USERNAME={args.name}")
    print(f'                  export MLFLOW_TRACKING_PASSWORD="$(cat {path})"')
    return 0


@reports_errors
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vae_mnist_tools.stack", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--folder", help="the stack's folder (default: .stack at the repository root)"
    )
    start = commands.add_parser(
        "up",
        parents=[common],
        help="start the stack (wiping a stopped one) and print what to export",
        description=DESCRIPTION,
    )
    for key, port in DEFAULT_PORTS.items():
        start.add_argument(
            f"--{key}-port",
            type=int,
            default=port,
            help=f"port of {PORT_NAMES[key]} (default {port}; 0: any free port)",
        )
    commands.add_parser("down", parents=[common], help="stop what `up` started, by PID")
    commands.add_parser("status", parents=[common], help="each service up or down")
    commands.add_parser("env", parents=[common], help="print again what `up` printed to export")
    user = commands.add_parser("user", help="the server's users and their roles (as its admin)")
    actions = user.add_subparsers(dest="action", required=True)
    add = actions.add_parser(
        "add", parents=[common], help="a new user with a role; its password goes to a file"
    )
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=access.ROLES)
    actions.add_parser("list", parents=[common], help="every user and its role")
    for action, text in (("remove", "delete a user"), ("reset", "give a user a new password")):
        actions.add_parser(action, parents=[common], help=text).add_argument("name")
    args = parser.parse_args(argv)
    folder = Path(args.folder).resolve() if args.folder else default_folder()

    if args.command == "up":
        ports = {key: getattr(args, f"{key}_port") for key in DEFAULT_PORTS}
        if set(running(folder)) == set(SERVICES):
            print("the stack is already up")
        began = time.monotonic()
        stack = up(folder, ports)
        print(f"stack up in {stack.folder} ({time.monotonic() - began:.0f} s)")
        _print_env(stack)
        print(f"stop it with: python -m vae_mnist_tools.stack down --folder {stack.folder}")
        return 0
    if args.command == "down":
        stopped = down(folder)
        if not stopped:
            print("nothing to stop")
        for service, pid in stopped.items():
            print(f"stopped {service} (pid {pid})")
        return 0
    stack = read(folder)
    if args.command == "user":
        if stack is None or not status(folder)["mlflow"]:
            raise StackError(f"no running stack in {folder}: start it with `make stack-up`")
        return _users(stack, args)
    if args.command == "env":
        if stack is None or not all(status(folder).values()):
            raise StackError(f"no running stack in {folder}: start it with `make stack-up`")
        _print_env(stack)
        return 0
    states = status(folder)
    pids = running(folder)
    addresses = {}
    if stack is not None:
        addresses = {
            "postgres": f"127.0.0.1:{stack.ports['postgres']}",
            "ceph-mon": f"127.0.0.1:{stack.ports['mon']}",
            "radosgw": stack.s3_endpoint,
            "mlflow": stack.tracking_uri,
        }
    print(f"stack in {folder}")
    for service, is_up in states.items():
        detail = f"  pid {pids[service]}" if service in pids else ""
        if is_up and service in addresses:
            detail += f"  {addresses[service]}"
        print(f"  {service:<9} {'up' if is_up else 'down'}{detail}")
    return 0 if all(states.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
