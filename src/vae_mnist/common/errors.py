"""Expected failures, and the one-line way a stage reports them.

A user who mistypes a param or points at a dead mirror needs one line that names the problem and the
fix, not a traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import functools
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import NoReturn, TypeVar

T = TypeVar("T")


# What to do about an out that changed after its stage wrote it (edited, truncated, corrupted).
RESTORE_HINT = "`dvc status` shows it modified; `dvc checkout --force` restores the last good copy"


class VaeMnistError(Exception):
    """A failure the user can fix; its message is the whole report."""

    exit_code = 1


class ConfigError(VaeMnistError):
    """params.yaml is missing, malformed, or holds a key or value that is not allowed."""

    exit_code = 2


class DataError(VaeMnistError):
    """A data file is missing, truncated, corrupt or of the wrong shape."""


class DownloadError(VaeMnistError):
    """No mirror delivered a file whose content matches the known digest."""


class TrackingError(VaeMnistError):
    """The MLflow store cannot be reached or written."""


class StackError(VaeMnistError):
    """The local team stack cannot start or stop: a port taken, a binary missing, a service down."""


class ClusterError(VaeMnistError):
    """A distributed run cannot start, its workers disagree, or one of them failed."""


class CannotReproduce(VaeMnistError):
    """A registered version's lineage lacks what a rebuild needs: a commit, data, an environment."""

    exit_code = 2


class ExplorerError(VaeMnistError):
    """The explorer cannot show what was asked: no such version, no decoder, no latent means."""


class ReportError(VaeMnistError):
    """A side of a comparison cannot be read: no such revision, experiment or version, or no
    evaluation to compare."""

    exit_code = 2


class Diverged(VaeMnistError):
    """Training's loss became NaN or infinite: nothing it would save is worth keeping."""

    PREFIX = "training diverged"  # how its message begins, for whoever reads a stage's output


class Stopped(VaeMnistError):
    """The stage was stopped on purpose before its end (a sweep's pruner gave up on the trial):
    like an interruption, it leaves no outs, its MLflow run KILLED and nothing registered."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C's KeyboardInterrupt so that the same clean-up runs: staging
    folders removed, the MLflow run ended KILLED (Python's default for SIGTERM is to die on the
    spot, leaving both behind)."""


# Failures of the machine rather than of the code: a full disk, a read-only or forbidden folder.
# Each is one line naming the file; any other OSError is a bug and keeps its traceback.
ENVIRONMENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})


def fail(error: VaeMnistError) -> NoReturn:
    print(f"error: {error}", file=sys.stderr)
    sys.exit(error.exit_code)


# Code an interruption must not cut through. A database transaction cut halfway keeps its locks in
# this process (sqlite's write lock, PostgreSQL's row locks), so ending the MLflow run KILLED would
# wait on them and fail; an exception raised in a weakref callback is dropped with a traceback; and
# one raised while TensorFlow traces a function into a graph can surface from its C++ bindings as
# "SystemError: Objects/listobject.c:338: bad argument to internal function" (seen in CI, inside
# auto_control_deps) instead of the interruption. Tracing takes a second or two, once per function.
# So can one raised in an import that TensorFlow's C++ makes while it flattens a function's inputs
# ("SystemError: <built-in function __import__> returned a result with an exception set", seen in
# CI inside nest_util, where the cut-short flattening then called the traced function with one
# argument too few: "Signature specifies 20 arguments, got: 19"); and any import cut halfway leaves
# a module half-initialised. Not a whole call of a tf.function: a loop of such calls (an epoch's
# steps, the test set's batches) is inside one nearly all the time, so a deferred signal would keep
# landing in the next call and wait for the loop to end.
UNINTERRUPTIBLE = (
    "sqlalchemy.",
    "sqlite3",
    "psycopg",
    "mlflow.store.",
    "weakref",
    "tensorflow.python.framework.func_graph",
    "tensorflow.python.util.nest_util",
    "importlib",
    "_frozen_importlib",  # importlib._bootstrap as Python runs it
)
DEFER_S = 0.02  # how soon a deferred signal is delivered again


def _uninterruptible(frame: FrameType | None) -> bool:
    while frame is not None:
        if frame.f_globals.get("__name__", "").startswith(UNINTERRUPTIBLE):
            return True
        frame = frame.f_back
    return False


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """Raise Ctrl-C's or SIGTERM's interruption, unless the stage is inside a store call: then
    the signal comes again shortly, until the call has returned."""
    if _uninterruptible(frame):
        timer = threading.Timer(DEFER_S, os.kill, (os.getpid(), signum))
        timer.daemon = True
        timer.start()
        return
    raise Terminated if signum == signal.SIGTERM else KeyboardInterrupt


def environment_error(error: OSError) -> VaeMnistError | None:
    """The one-line form of an OSError that the machine caused, or None for any other."""
    if error.errno not in ENVIRONMENT_ERRNOS:
        return None
    where = f"{error.filename}: " if error.filename else ""
    return VaeMnistError(f"{where}{error.strerror or error}")


def reports_errors(main: Callable[..., T]) -> Callable[..., T]:
    """Turn a stage's expected failures into one line on stderr and a non-zero exit; SIGINT and
    SIGTERM end it cleanly with the shell's exit codes (130, 143)."""

    @functools.wraps(main)
    def wrapper(*args: object, **kwargs: object) -> T:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, _interrupt)
        try:
            return main(*args, **kwargs)
        except VaeMnistError as error:
            fail(error)
        except OSError as error:
            if (known := environment_error(error)) is None:
                raise
            fail(known)
        except KeyboardInterrupt as interrupt:
            signum = signal.SIGTERM if isinstance(interrupt, Terminated) else signal.SIGINT
            print(f"interrupted ({signum.name})", file=sys.stderr)
            sys.exit(128 + signum)

    return wrapper
