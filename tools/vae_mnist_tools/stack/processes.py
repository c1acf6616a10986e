"""The stack's processes: spawning, PID files, health waits, port checks, stopping by PID.

`down` must stop exactly what `up` started and nothing else, even from a later process and after a
reboot recycled the PIDs. So every child is spawned with a marker in its environment (inherited by
its own children: PostgreSQL backends, uvicorn workers), and its PID file records the PID with the
process's start time: a PID is only signalled while both still match.

Why not supervisord (or mirakuru): a supervisor knows the PIDs it forked, and `down` must also
stop what a dead leader left behind: the mlflow server's uvicorn worker outlives a killed server
and keeps serving on its port (tests/stack/test_stack.py kills one), so the marker scan below would
stay either way. And the restart a supervisor adds is not wanted here: a crashed PostgreSQL or
Ceph OSD of this throwaway stack is a fault for `make stack-status` to show and `make stack-up`
to rebuild, and a restarted mlflow server would loop on the port its orphaned worker holds.
What is left of supervising (spawn in a session, wait for health, stop by group) is this file.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from vae_mnist.common.errors import StackError
from vae_mnist.common.ports import LOCALHOST

MARKER = "VAE_MNIST_STACK"  # environment variable naming the stack folder, in every child
HOST = LOCALHOST
POLL_S = 0.25

# Popen objects of the children this Python process spawned, so that they are reaped (no zombies
# while a test session runs) and never garbage-collected while running.
_children: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class Spawned:
    """A daemon `up` started: enough to find it again and to stop it."""

    service: str
    pid: int
    start: int  # /proc/PID/stat start time, in clock ticks since boot
    log: Path


def spawn(
    service: str,
    command: Sequence[str],
    *,
    folder: Path,
    log: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    user: str | None = None,
) -> Spawned:
    """Start `command` in the background, in its own session, with stdout and stderr in `log`.

    Its own session keeps it out of the terminal's Ctrl-C and makes its PID its process group, so
    that stopping a server can take its workers too. `user` (root only) runs it as that user and
    group, so the PID is the daemon itself and not a `su` in front of it.
    """
    child_env = dict(os.environ if env is None else env)
    child_env[MARKER] = str(folder)
    ids: dict[str, object] = {}
    if user is not None:
        ids = {"user": user, "group": user, "extra_groups": []}
    with open(log, "ab") as output:
        process = subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=child_env,
            cwd=cwd,
            start_new_session=True,
            **ids,  # type: ignore[arg-type]
        )
    _children[process.pid] = process
    spawned = Spawned(service, process.pid, start_time(process.pid) or 0, log)
    write_pid_file(folder, spawned)
    return spawned


def pid_file(folder: Path, service: str) -> Path:
    return folder / "pids" / f"{service}.pid"


def write_pid_file(folder: Path, spawned: Spawned) -> None:
    """First line the PID (for `kill $(head -1 ...)`), second its start time."""
    path = pid_file(folder, spawned.service)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{spawned.pid}\n{spawned.start}\n")


def read_pid_file(folder: Path, service: str) -> tuple[int, int] | None:
    try:
        pid, start = pid_file(folder, service).read_text().split()[:2]
        return int(pid), int(start)
    except (OSError, ValueError):
        return None


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat from the field after the command name (which may hold spaces) on."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()


def start_time(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def process_group(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[2]) if fields else None


def alive(pid: int) -> bool:
    """Running, not a zombie; a child of this process that exited is reaped."""
    fields = _stat_fields(pid)
    running = fields is not None and fields[0] not in ("Z", "X")
    if not running and (child := _children.pop(pid, None)) is not None:
        child.wait()  # gone or a zombie: returns at once
    return running


def mentions(pid: int, folder: Path) -> bool:
    """Whether the process's command line, working directory or environment names the folder.

    Three places because each misses some: PostgreSQL's backends overwrite their command line
    and environment with their title but work in the data directory; the mlflow server's
    processes name the folder only in their environment; Ceph's daemons chdir to / but name
    their config file.
    """
    text = str(folder)
    proc = Path(f"/proc/{pid}")

    def inside(path: str) -> bool:
        return path == text or path.startswith(text + "/")

    with contextlib.suppress(OSError):
        arguments = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
        if any(inside(argument) for argument in arguments):
            return True
    with contextlib.suppress(OSError):
        if inside(os.readlink(proc / "cwd")):
            return True
    with contextlib.suppress(OSError):
        return f"{MARKER}={text}".encode() in (proc / "environ").read_bytes().split(b"\0")
    return False


def ours(folder: Path, service: str) -> int | None:
    """The service's PID when its process is alive and still the one `up` started, else None."""
    recorded = read_pid_file(folder, service)
    if recorded is None:
        return None
    pid, start = recorded
    if alive(pid) and start_time(pid) == start and mentions(pid, folder):
        return pid
    return None


def stack_processes(folder: Path) -> list[int]:
    """Every live process whose command line or environment names `folder`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            pid = int(entry.name)
            if alive(pid) and mentions(pid, folder):
                found.append(pid)
    return sorted(found)


def group_members(pgid: int, folder: Path) -> list[int]:
    return [pid for pid in stack_processes(folder) if process_group(pid) == pgid]


def stop(
    pid: int,
    folder: Path,
    *,
    sig: signal.Signals = signal.SIGTERM,
    group: bool = False,
    timeout_s: float = 15.0,
) -> None:
    """Send `sig` (to the process group with `group`), wait, then SIGKILL what is left."""

    def remaining() -> list[int]:
        left = group_members(pid, folder) if group else []
        if alive(pid) and pid not in left:
            left.append(pid)
        return left

    for signum in (sig, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(pid, signum)
            else:
                os.kill(pid, signum)
        deadline = time.monotonic() + timeout_s
        while remaining() and time.monotonic() < deadline:
            time.sleep(0.1)
        if not remaining():
            return
    raise StackError(f"process {pid} survived SIGKILL")


def port_free(port: int) -> bool:
    """Whether a server could bind 127.0.0.1:`port` now (SO_REUSEADDR, as servers bind)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def answers(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:`port`."""
    try:
        with socket.create_connection((HOST, port), timeout=1):
            return True
    except OSError:
        return False


def wait_for(spawned: Spawned, ready: Callable[[], bool], timeout_s: float) -> None:
    """Poll `ready` until it holds; a clear line naming the service and its log otherwise."""
    deadline = time.monotonic() + timeout_s
    while True:
        if not alive(spawned.pid):
            raise StackError(
                f"{spawned.service} exited while starting: see {spawned.log}",
            )
        with contextlib.suppress(Exception):
            if ready():
                return
        if time.monotonic() >= deadline:
            raise StackError(
                f"{spawned.service} did not come up within {timeout_s:g} s: see {spawned.log}"
            )
        time.sleep(POLL_S)


def run(
    command: Sequence[str],
    *,
    what: str,
    log: Path,
    timeout_s: float = 120,
    secret_output: bool = False,
    **kwargs: object,
) -> bytes:
    """Run a set-up command to completion, its output appended to `log`; one line if it fails.

    `secret_output`: its standard output holds secrets, so it is returned, not logged (only
    its standard error goes to `log`)."""
    with open(log, "ab") as output:
        try:
            result = subprocess.run(
                list(command),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if secret_output else output,
                stderr=output if secret_output else subprocess.STDOUT,
                timeout=timeout_s,
                check=False,
                **kwargs,  # type: ignore[arg-type]
            )
        except subprocess.TimeoutExpired:
            raise StackError(f"{what} took longer than {timeout_s:g} s: see {log}") from None
    if result.returncode != 0:
        raise StackError(f"{what} failed (exit code {result.returncode}): see {log}")
    return result.stdout or b""
