"""`python -m vae_mnist.stack up|down|status|env`: the local team stack from the command line."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from vae_mnist.errors import StackError, reports_errors
from vae_mnist.stack.control import (
    DEFAULT_PORTS,
    PORT_NAMES,
    SERVICES,
    default_folder,
    down,
    running,
    status,
    up,
)
from vae_mnist.stack.state import Stack, read

DESCRIPTION = """\
A throwaway team stack on 127.0.0.1: PostgreSQL, a one-node Ceph cluster whose RADOS Gateway
serves S3, and an `mlflow server` storing runs in PostgreSQL and artifacts in S3. Everything it
writes (data, config, sockets, logs, PID files, stack.json with the credentials) stays in the
stack folder. `up` on a folder whose stack is not running wipes what an earlier stack left there
(its data, logs and state: the stack keeps nothing) and builds a new one, with new credentials.
"""


def _print_env(stack: Stack) -> None:
    print(f"MLflow UI: {stack.ui_url}")
    print("# point MLflow and DVC at the stack (the keys change with every `up`):")
    for line in stack.env_lines():
        print(line)


@reports_errors
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vae_mnist.stack", description=DESCRIPTION)
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
        print(f"stop it with: python -m vae_mnist.stack down --folder {stack.folder}")
        return 0
    if args.command == "down":
        stopped = down(folder)
        if not stopped:
            print("nothing to stop")
        for service, pid in stopped.items():
            print(f"stopped {service} (pid {pid})")
        return 0
    stack = read(folder)
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
