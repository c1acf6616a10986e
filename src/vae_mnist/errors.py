"""Expected failures, and the one-line way a stage reports them.

A user who mistypes a param or points at a dead mirror needs one line that names the problem and the
fix, not a traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import NoReturn, TypeVar

T = TypeVar("T")


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


def fail(error: VaeMnistError) -> NoReturn:
    print(f"error: {error}", file=sys.stderr)
    sys.exit(error.exit_code)


def reports_errors(main: Callable[..., T]) -> Callable[..., T]:
    """Turn a stage's expected failures into one line on stderr and a non-zero exit."""

    @functools.wraps(main)
    def wrapper(*args: object, **kwargs: object) -> T:
        try:
            return main(*args, **kwargs)
        except VaeMnistError as error:
            fail(error)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            sys.exit(130)

    return wrapper
