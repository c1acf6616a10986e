"""Serving the champion: `mlflow models serve` of `models:/<name>@champion`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException

from vae_mnist.errors import TrackingError
from vae_mnist.tracking.names import CHAMPION
from vae_mnist.tracking.store import first_line, require_store
from vae_mnist.urls import redact


def serve_command(model_name: str, host: str, port: int) -> tuple[list[str], dict[str, str]]:
    """`mlflow models serve` of the champion, and the environment it needs, after checking that
    the alias exists (the server would otherwise start, then die on a long traceback)."""
    uri = require_store()  # one line for a store that is down or will not let this user in
    try:
        version = mlflow.MlflowClient(uri).get_model_version_by_alias(model_name, CHAMPION)
    except MlflowException as error:
        raise TrackingError(
            f"no version of {model_name} holds the alias {CHAMPION} in {redact(uri)}: run the "
            f"pipeline (make repro) first, or point MLFLOW_TRACKING_URI at the store that has it "
            f"({first_line(error)})"
        ) from None
    model_uri = f"models:/{model_name}@{CHAMPION}"
    print(
        f"serving {model_uri} (version {version.version}) from {redact(uri)}\n"
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
