"""The local team stack for tests: its Debian binaries, a throwaway stack on free ports,
the processes it may leave, and logging in as one of its users."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from vae_mnist_tools.stack.control import DEFAULT_PORTS
from vae_mnist_tools.stack.state import Stack


def require_stack_binaries() -> None:
    """Skip (outside CI) or fail (in CI, which must install them) without the Debian binaries."""
    from vae_mnist.common.errors import StackError
    from vae_mnist_tools.stack import binaries

    try:
        binaries.postgres_bindir()
        binaries.ceph_binaries()
    except StackError as error:
        if os.environ.get("CI"):
            pytest.fail(f"CI must install the stack's packages: {error}")
        pytest.skip(str(error))


def stack_folder() -> Path:
    """A new short folder under the system's temporary folder, which the `postgres` user can
    pass through (pytest's own temporary folders are private to this user)."""
    return Path(tempfile.mkdtemp(prefix="vae-stack-"))


def processes_of(folder: Path) -> list[str]:
    """Every live process whose command line, working directory or environment names `folder`,
    as "PID command line": what the stack may have left running."""
    text = str(folder)
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(proc / "cwd")
            environ = (proc / "environ").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if text in cmdline or cwd == text or cwd.startswith(text + "/") or text in environ:
            found.append(f"{proc.name} {cmdline.strip()}")
    return found


@contextmanager
def throwaway_stack(request: pytest.FixtureRequest, project: Any = None) -> Iterator[Stack]:
    """A team stack on free ports (governing `project`'s names, by default the project's own);
    stopped by PID at the end, and then no process of it may be left. Its folder (logs) stays
    when a test failed."""
    from vae_mnist_tools.stack.control import down, up

    require_stack_binaries()
    folder = stack_folder()
    try:
        yield up(folder, ports=dict.fromkeys(DEFAULT_PORTS, 0), project=project)
    finally:
        down(folder)
        left = processes_of(folder)
        if not left and not request.session.testsfailed:
            shutil.rmtree(folder)
        assert not left, f"the stack left processes running: {left}"


def log_in(stack: Stack, monkeypatch: pytest.MonkeyPatch, user: str = "admin") -> None:
    """This process's MLflow clients talk to the stack's server as `user` (over its TLS)."""
    for key, value in stack.client_env(user).items():
        monkeypatch.setenv(key, value)
