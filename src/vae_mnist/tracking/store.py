"""Where the MLflow store is, connecting to it, and telling an outage from a wrong call.

Default: a sqlite database and an artifact folder at the repository root, by absolute path, so
that stages run by `dvc exp run --queue` in a temporary copy of the repository still write to the
user's store. `MLFLOW_TRACKING_URI` replaces it (a shared server, say) without any change in code.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import mlflow
import requests
from filelock import FileLock, Timeout
from mlflow.exceptions import MlflowException

from vae_mnist.common.config import project_root
from vae_mnist.common.errors import TrackingError
from vae_mnist.common.ports import LOCALHOST, UI_PORT
from vae_mnist.common.urls import redact

STORE_FILE = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"
# The UI opens in GenAI mode by default; this experiment tag and URL flag make it land on the
# training-runs table with the model registry in the sidebar (MLflow 3.x).
EXPERIMENT_KIND_TAG = {"mlflow.experimentKind": "custom_model_development"}
UI_URL_SUFFIX = "?workflowType=machine_learning"
STORE_LOCK_TIMEOUT_S = 300
STORE_HINT = (
    "check MLFLOW_TRACKING_URI and that the server, its database and its artifact store are up "
    "(`make stack-status` for the local stack), or unset it to use the project's sqlite store"
)


def store() -> tuple[str, str | None]:
    """(tracking URI, artifact location for new experiments; None to let the server decide)."""
    if uri := os.environ.get("MLFLOW_TRACKING_URI"):
        return uri, None
    root = project_root()
    return sqlite_uri(root), (root / ARTIFACTS_DIR).as_uri()


def sqlite_uri(root: Path) -> str:
    """The URI of the sqlite store of the project at `root` (a rebuild's worktree has its own)."""
    return f"sqlite:///{root / STORE_FILE}"


def sqlite_file(uri: str) -> Path | None:
    """The database file of a `sqlite:///` URI (an MLflow store's, an Optuna study's); None for
    any other URI."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri.removeprefix("sqlite:///").split("?")[0])


def tracking_uri() -> str:
    return store()[0]


def shown_uri() -> str:
    """The tracking URI as messages show it: without a password (postgresql://user:pw@...)."""
    return redact(tracking_uri())


class _ReportedOnce(logging.Filter):
    """MLflow's sqlalchemy store logs every database error with its traceback before raising it;
    the stage reports the raised error in one line, so the logged copy is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("SQLAlchemy database error")


logging.getLogger("mlflow.store.db.utils").addFilter(_ReportedOnce())


@contextmanager
def store_lock() -> Iterator[None]:
    """Hold the sqlite store's lock file while a stage creates the schema on first use.

    `dvc queue start -j N` runs N stages at once against one sqlite file. Ordinary writes wait
    for each other (MLflow sets sqlite's busy timeout), but N processes creating the tables of a
    new file at once fail ("table runs already exists"). A server creates its schema once, at
    its own start, so other stores need no lock.
    """
    uri = tracking_uri()
    if (database := sqlite_file(uri)) is None:
        yield
        return
    database.parent.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(f"{database}.lock", timeout=STORE_LOCK_TIMEOUT_S):
            yield
    except Timeout:
        raise TrackingError(
            f"MLflow store {uri} stayed locked for {STORE_LOCK_TIMEOUT_S} s by another stage "
            f"(if none is running, delete {database}.lock)"
        ) from None


def connect() -> str:
    """Point MLflow at the store and return its URI."""
    # An unreachable server should fail in seconds, not after MLflow's default 7 retries.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)  # note: this also exports MLFLOW_TRACKING_URI
    return uri


def ui_base() -> str:
    """Where the store's MLflow UI is: a tracking server serves its own; a sqlite store's is
    `make ui` on this machine."""
    uri = tracking_uri()
    if urlsplit(uri).scheme in ("http", "https"):
        return redact(uri).rstrip("/")
    return f"http://{LOCALHOST}:{UI_PORT}"


def ui_command(experiment: str, port: int = UI_PORT) -> tuple[str, list[str]]:
    """The page that opens the experiment's training runs, and the `mlflow server` on this
    machine that serves the UI on the project's store."""
    uri, artifacts = store()
    exp_id = experiment_id(experiment)
    url = f"http://{LOCALHOST}:{port}/#/experiments/{exp_id}{UI_URL_SUFFIX}"
    # the environment's own mlflow, whether or not its bin/ is on PATH
    mlflow_bin = os.path.join(os.path.dirname(sys.executable), "mlflow")
    command = [mlflow_bin, "server", "--host", LOCALHOST, "--port", str(port)]
    command += ["--backend-store-uri", uri]
    if artifacts:
        command += ["--default-artifact-root", artifacts]
    return url, command


@contextmanager
def refusals(what: str) -> Iterator[None]:
    """A call the store refuses (a role that may not, a server down) as one TrackingError."""
    try:
        yield
    except MlflowException as error:
        raise TrackingError(
            f"MLflow store {shown_uri()} refused the {what}: {first_line(error)} ({hint(error)})"
        ) from None


def unusable(uri: str, error: BaseException) -> TrackingError:
    """The one line for a store that does not answer as a store: what it said, and what to do."""
    return TrackingError(
        f"MLflow store {redact(uri)} cannot be used: {first_line(error)} ({hint(error)})"
    )


def require_store() -> str:
    """Connect to a store that exists and answers, and return its URI; a sqlite file that is
    not there is not created (reading an empty store would only say that nothing is in it)."""
    uri = tracking_uri()
    if (database := sqlite_file(uri)) is not None and not database.is_file():
        raise TrackingError(
            f"no MLflow store at {database}: run the pipeline (make repro) first, or point "
            "MLFLOW_TRACKING_URI at the store that has the models"
        )
    connect()
    try:
        mlflow.MlflowClient().search_registered_models(max_results=1)
    except Exception as error:  # sqlalchemy, requests and MLflow errors alike
        raise unusable(uri, error) from None
    return uri


def experiment_id(name: str) -> str:
    """Connect, and return the experiment's id, creating it on first use."""
    artifacts = store()[1]  # before connecting, which exports MLFLOW_TRACKING_URI
    uri = connect()
    try:
        with store_lock():  # the first use of a sqlite store creates its schema
            experiment = mlflow.get_experiment_by_name(name)
            if experiment is None:
                return mlflow.create_experiment(
                    name, artifact_location=artifacts, tags=EXPERIMENT_KIND_TAG
                )
            for key, value in EXPERIMENT_KIND_TAG.items():
                if experiment.tags.get(key) != value:
                    mlflow.set_experiment_tag(key, value)
            return experiment.experiment_id
    except TrackingError:
        raise
    except Exception as error:  # sqlalchemy, requests and MLflow errors alike
        raise unusable(uri, error) from None


def model_versions(client: mlflow.MlflowClient, model_name: str, where: str = "") -> list:
    """Every version of `model_name` (and `where`, a further filter clause), through all pages:
    a store answers a page a call, and an unpaged search would miss the rest."""
    query = f"name = '{model_name}'" + (f" and {where}" if where else "")
    found, token = [], None
    while True:
        page = client.search_model_versions(query, page_token=token)
        found.extend(page)
        token = page.token
        if not token:
            return found


def unreachable(error: BaseException) -> bool:
    """A store that could not be reached or answered with server errors, after MLflow's retries
    (not a wrong call, which keeps its traceback)."""
    if isinstance(error, requests.RequestException):
        return True
    return isinstance(error, MlflowException) and str(error).startswith("API request to")


def locked(error: BaseException) -> bool:
    """A sqlite store that another process held locked for longer than MLflow waits (20 s)."""
    return "database is locked" in str(error)


# What an MLflow client logs in to a server with users by (the team stack's exports).
CREDENTIALS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
CERTIFICATE = "MLFLOW_TRACKING_SERVER_CERT_PATH"


def http_status(error: BaseException) -> int | None:
    """The HTTP status a server answered a failed call with, where it answered."""
    if isinstance(error, requests.HTTPError) and error.response is not None:
        return error.response.status_code
    found = re.search(r"failed with error code (\d{3}) != 200", str(error))
    return int(found.group(1)) if found else None


def untrusted(error: BaseException) -> bool:
    """A server whose TLS certificate this client does not trust."""
    return "CERTIFICATE_VERIFY_FAILED" in str(error)


def hint(error: BaseException) -> str:
    """What to check, for a store that failed with `error`."""
    if locked(error):
        return "another process is writing to it: wait for it to finish, then rerun"
    if untrusted(error):
        return (
            f"its TLS certificate is not trusted here: set {CERTIFICATE} to the CA that signed "
            "it (the team stack's is tls/ca.pem in its folder; `make stack-up` prints the export)"
        )
    status = http_status(error)
    user = os.environ.get(CREDENTIALS[0])
    if status == 401:
        if missing := [name for name in CREDENTIALS if not os.environ.get(name)]:
            return (
                f"the server lets in only its users, and {' and '.join(missing)} "
                f"{'is' if len(missing) == 1 else 'are'} not set (`make stack-up` prints the "
                "exports; `vae-mnist stack user add` makes a user)"
            )
        return f"the server refused the password of user {user}: check {CREDENTIALS[1]}"
    if status == 403:
        return (
            f"user {user} may not do this on the server: its role does not allow it "
            "(the stack's admin gives roles: `vae-mnist stack user list`)"
        )
    return STORE_HINT


def first_line(error: BaseException) -> str:
    """The error's first line; for MLflow's failed HTTP calls, just the endpoint and the cause
    (its full text runs to several hundred characters of urllib3 detail)."""
    text = str(error).strip()
    line = text.splitlines()[0] if text else repr(error)
    if found := re.match(r"API request to (\S+) failed.*\(Caused by \w+\((.*)\)\)$", line):
        url, cause = found.groups()
        reason = cause.strip("'\"").rsplit(": ", 1)[-1]
        return f"{urlsplit(url).path}: {reason}"
    answered = r"API request to endpoint (\S+) failed with error code (\d{3}) != 200\. "
    if found := re.match(answered + r"Response body: '?(.*?)'?$", line):
        endpoint, status, body = found.groups()
        return f"{endpoint}: HTTP {status} {body[:120]}".rstrip()
    return line[:300]
