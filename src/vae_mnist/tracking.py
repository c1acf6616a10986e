"""MLflow: where the store is, how a stage opens its run, and which tags every run carries.

The one module that knows the store. Default: a sqlite database and an artifact folder at the
repository root, by absolute path, so that stages run by `dvc exp run --queue` in a temporary copy
of the repository still write to the user's store. `MLFLOW_TRACKING_URI` replaces it (a shared
server, say) without any change in code.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import subprocess
import sys
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import mlflow
import mlflow.data
import numpy as np
import requests
from filelock import FileLock, Timeout
from mlflow.exceptions import MlflowException

from vae_mnist.config import PARAMS_FILE, load_config
from vae_mnist.errors import TrackingError, reports_errors

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


def project_root() -> Path:
    """The repository root: DVC_ROOT when DVC runs us (the original root, even for queued runs)."""
    if dvc_root := os.environ.get("DVC_ROOT"):
        return Path(dvc_root).resolve()
    cwd = Path.cwd().resolve()
    for folder in (cwd, *cwd.parents):
        if (folder / "dvc.yaml").is_file():
            return folder
    return cwd


def store() -> tuple[str, str | None]:
    """(tracking URI, artifact location for new experiments; None to let the server decide)."""
    if uri := os.environ.get("MLFLOW_TRACKING_URI"):
        return uri, None
    root = project_root()
    return f"sqlite:///{root / STORE_FILE}", (root / ARTIFACTS_DIR).as_uri()


def tracking_uri() -> str:
    return store()[0]


@contextmanager
def store_lock() -> Iterator[None]:
    """Hold the sqlite store's lock file while a stage creates the schema on first use.

    `dvc queue start -j N` runs N stages at once against one sqlite file. Ordinary writes wait
    for each other (MLflow sets sqlite's busy timeout), but N processes creating the tables of a
    new file at once fail ("table runs already exists"). A server creates its schema once, at
    its own start, so other stores need no lock.
    """
    uri = tracking_uri()
    if not uri.startswith("sqlite:///"):
        yield
        return
    database = Path(uri.removeprefix("sqlite:///").split("?")[0])
    database.parent.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(f"{database}.lock", timeout=STORE_LOCK_TIMEOUT_S):
            yield
    except Timeout:
        raise TrackingError(
            f"MLflow store {uri} stayed locked for {STORE_LOCK_TIMEOUT_S} s by another stage "
            f"(if none is running, delete {database}.lock)"
        ) from None


def experiment_id(name: str) -> str:
    """Point MLflow at the store and return the experiment's id, creating it on first use."""
    # An unreachable server should fail in seconds, not after MLflow's default 7 retries.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    uri, artifacts = store()
    mlflow.set_tracking_uri(uri)  # note: this also exports MLFLOW_TRACKING_URI
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
        raise TrackingError(
            f"MLflow store {uri} cannot be used: {first_line(error)} ({STORE_HINT})"
        ) from None


def _git(*args: str) -> str | None:
    try:
        result = subprocess.run(
            ["git", *args], cwd=project_root(), capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def run_tags(stage: str) -> dict[str, str]:
    """Tags that tie a run to its stage, its code and, when DVC ran it, its DVC experiment."""
    tags = {"stage": stage}
    if commit := _git("rev-parse", "HEAD"):
        tags["git.commit"] = commit
        tags["git.dirty"] = str(bool(_git("status", "--porcelain", "--untracked-files=no")))
    for variable, tag in (("DVC_EXP_NAME", "dvc.exp_name"), ("DVC_STAGE", "dvc.stage")):
        if value := os.environ.get(variable):
            tags[tag] = value
    return tags


@contextmanager
def stage_run(
    stage: str, experiment: str, params: Mapping[str, Any] | None = None
) -> Iterator[mlflow.ActiveRun]:
    """One MLflow run named after the stage; it ends FAILED if the stage raises.

    A store that stops answering while the stage runs (the server, its database or its artifact
    store down) ends the stage with one line naming it, not MLflow's traceback.
    """
    exp_id = experiment_id(experiment)
    uri = tracking_uri()
    try:
        with mlflow.start_run(experiment_id=exp_id, run_name=stage, tags=run_tags(stage)) as run:
            # Reading the run's artifact folder reaches the artifact store too (through a server
            # that proxies it): a store that is down fails the stage now, before its work.
            mlflow.MlflowClient().list_artifacts(run.info.run_id)
            if params:
                mlflow.log_params(dict(params))
            yield run
    except (MlflowException, requests.RequestException) as error:
        if not unreachable(error):
            raise
        raise TrackingError(
            f"MLflow store {uri} failed during the {stage} stage: {first_line(error)} "
            f"({STORE_HINT})"
        ) from None


def unreachable(error: BaseException) -> bool:
    """A store that could not be reached or answered with server errors, after MLflow's retries
    (not a wrong call, which keeps its traceback)."""
    if isinstance(error, requests.RequestException):
        return True
    return isinstance(error, MlflowException) and str(error).startswith("API request to")


def first_line(error: BaseException) -> str:
    """The error's first line; for MLflow's failed HTTP calls, just the endpoint and the cause
    (its full text runs to several hundred characters of urllib3 detail)."""
    text = str(error).strip()
    line = text.splitlines()[0] if text else repr(error)
    if found := re.match(r"API request to (\S+) failed.*\(Caused by \w+\((.*)\)\)$", line):
        url, cause = found.groups()
        reason = cause.strip("'\"").rsplit(": ", 1)[-1]
        return f"{urlsplit(url).path}: {reason}"
    return line[:300]


def log_dataset(
    images: np.ndarray, labels: np.ndarray, source: Path, name: str, digest: str, context: str
) -> None:
    """Log a split as an MLflow dataset input; the same digest marks the same data in every run."""
    with warnings.catch_warnings():
        # MLflow 3.x registers its local-file source twice and warns that a path is ambiguous
        # between the two identical classes; nothing to act on.
        warnings.simplefilter("ignore", UserWarning)
        dataset = mlflow.data.from_numpy(
            images, targets=labels, source=source.resolve().as_uri(), name=name, digest=digest
        )
    mlflow.log_input(dataset, context=context)


def file_sha256(path: Path) -> str:
    """The content digest that ties a model file to the run that trained it."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


CHAMPION = "champion"
SCORE_TAG = "test.neg_elbo"  # on each evaluated model version: what the champion is chosen by
CONVERGE_ROUNDS = 20


def link_to_training(
    model_name: str, model_sha256: str, test_metrics: dict[str, float], figures_dir: Path
) -> None:
    """From the active (evaluate) run: find the training run by the model's digest, give it the
    test metrics and figures, and move the `champion` alias if this model is the best so far."""
    client = mlflow.MlflowClient()
    here = mlflow.active_run()
    found = client.search_runs(
        [here.info.experiment_id],
        filter_string=f"tags.`model.sha256` = '{model_sha256}' and tags.stage = 'train'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not found:
        print(
            f"note: no training run in {tracking_uri()} has model.sha256 {model_sha256[:12]}; "
            "this evaluate run stands alone (no test metrics on a training run, no champion)"
        )
        mlflow.set_tag("train_run_id", "none")
        return
    train_run = found[0].info.run_id
    mlflow.set_tag("train_run_id", train_run)
    for name, value in test_metrics.items():
        client.log_metric(train_run, name, value)
    client.log_artifacts(train_run, str(figures_dir), figures_dir.name)

    versions = client.search_model_versions(f"name = '{model_name}' and run_id = '{train_run}'")
    if not versions:
        print(f"note: training run {train_run} registered no version of {model_name}")
        return
    version = str(max(int(v.version) for v in versions))
    score = test_metrics["test/neg_elbo"]
    previous = champion_version(client, model_name)
    previous_score = scores(client, model_name).get(previous) if previous else None
    client.set_model_version_tag(model_name, version, SCORE_TAG, str(score))
    holder = converge_champion(client, model_name)
    if holder != version:
        decision = "kept"
    elif previous == version:
        decision = "already champion"
    else:
        decision = "promoted"
    mlflow.set_tags(
        {
            "champion.decision": decision,
            "champion.version": str(holder),
            "champion.previous_version": previous or "none",
            "champion.previous_test_neg_elbo": "none"
            if previous_score is None
            else str(previous_score),
            "candidate.version": version,
            "candidate.test_neg_elbo": str(score),
        }
    )
    against = "" if previous_score is None else f" against v{previous} ({previous_score:.2f})"
    print(f"champion: {model_name} v{version} (test -ELBO {score:.2f}) {decision}{against}")


def scores(client: mlflow.MlflowClient, model_name: str) -> dict[str, float]:
    """Every evaluated version's test -ELBO, from the versions' own tags."""
    found: dict[str, float] = {}
    token = None
    while True:
        page = client.search_model_versions(f"name = '{model_name}'", page_token=token)
        for v in page:
            if SCORE_TAG in v.tags:
                found[str(v.version)] = float(v.tags[SCORE_TAG])
        token = page.token
        if not token:
            return found


def champion_version(client: mlflow.MlflowClient, model_name: str) -> str | None:
    try:
        return str(client.get_model_version_by_alias(model_name, CHAMPION).version)
    except MlflowException:
        return None


def converge_champion(client: mlflow.MlflowClient, model_name: str) -> str:
    """Point `champion` at the best-scoring version, and check again until it holds still.

    No lock, so it is right for every store: evaluations that run at once each tag their own
    version first, then re-read every version's score and the alias after each move. Whoever
    writes the alias last reads again afterwards, and any tag written later is followed by its
    writer's own read, so however the calls interleave the alias ends on the lowest test -ELBO
    (ties: the oldest version).
    """
    refused = None
    for _ in range(CONVERGE_ROUNDS):
        ranked = scores(client, model_name)
        best = min(ranked, key=lambda v: (ranked[v], int(v)))
        if champion_version(client, model_name) == best:
            return best
        try:
            client.set_registered_model_alias(model_name, CHAMPION, best)
        except MlflowException as error:
            # Another evaluation wrote the alias at the same moment: on PostgreSQL two first
            # writes both insert it, and one fails on the duplicate key. Read again.
            refused = error
    raise TrackingError(
        f"the {CHAMPION} alias of {model_name} in {tracking_uri()} kept moving for "
        f"{CONVERGE_ROUNDS} rounds; run the evaluate stage again"
        + (f" (last refusal: {first_line(refused)})" if refused else "")
    )


def serve_command(model_name: str, host: str, port: int) -> tuple[list[str], dict[str, str]]:
    """`mlflow models serve` of the champion, and the environment it needs, after checking that
    the alias exists (the server would otherwise start, then die on a long traceback)."""
    uri = tracking_uri()
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    try:
        version = mlflow.MlflowClient(uri).get_model_version_by_alias(model_name, CHAMPION)
    except MlflowException as error:
        raise TrackingError(
            f"no version of {model_name} holds the alias {CHAMPION} in {uri}: run the pipeline "
            f"(make repro) first, or point MLFLOW_TRACKING_URI at the store that has it "
            f"({first_line(error)})"
        ) from None
    model_uri = f"models:/{model_name}@{CHAMPION}"
    print(
        f"serving {model_uri} (version {version.version}) from {uri}\n"
        f"  POST http://{host}:{port}/invocations",
        flush=True,
    )
    bin_dir = str(Path(sys.executable).parent)  # the server runs `uvicorn` from the environment
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": uri,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
    }
    command = [os.path.join(bin_dir, "mlflow"), "models", "serve", "-m", model_uri]
    command += ["--env-manager", "local", "--host", host, "--port", str(port)]
    return command, env


@reports_errors
def main(argv: list[str] | None = None) -> None:
    """`python -m vae_mnist.tracking {uri,ui,serve}`: the store the stages use, the UI on it, or
    the champion model served over HTTP."""
    parser = argparse.ArgumentParser(prog="python -m vae_mnist.tracking", description=main.__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("uri", help="print the tracking URI the stages use")
    ui = commands.add_parser("ui", help="serve the MLflow UI on 127.0.0.1 against that store")
    ui.add_argument("--port", type=int, default=5000)
    serve = commands.add_parser("serve", help=f"serve models:/<name>@{CHAMPION} over HTTP")
    serve.add_argument("--port", type=int, default=5001)
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="interface to bind; 0.0.0.0 exposes the model to the network, with no "
        "authentication: a deliberate choice (default: 127.0.0.1, this machine only)",
    )
    args = parser.parse_args(argv)
    uri, artifacts = store()
    if args.command == "uri":
        print(uri)
        return
    config = load_config(PARAMS_FILE)
    if args.command == "serve":
        command, env = serve_command(config.mlflow.registered_model_name, args.host, args.port)
        os.execvpe(command[0], command, env)
    exp_id = experiment_id(config.mlflow.experiment_name)
    url = f"http://127.0.0.1:{args.port}/#/experiments/{exp_id}{UI_URL_SUFFIX}"
    print(f"MLflow UI for {uri}\n  open {url}", flush=True)
    command = ["mlflow", "server", "--host", "127.0.0.1", "--port", str(args.port)]
    command += ["--backend-store-uri", uri]
    if artifacts:
        command += ["--default-artifact-root", artifacts]
    os.execvp(command[0], command)


if __name__ == "__main__":
    sys.exit(main())
