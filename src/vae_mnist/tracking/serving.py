"""Serving the champion: `mlflow models serve` of a verified copy of `models:/<name>@champion`.

What is served is what the registry recorded: the version's files are downloaded into
`.serve/` at the project root, the checkpoint's sha256 is checked against the version's
`model.sha256` tag and the served file's against its `served.sha256` tag, and only then does
`mlflow models serve` load that copy (so nothing can change between the check and the load),
with MLflow's pickle deserialization off: a flavour that unpickles is refused, whatever the store
holds.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException

from vae_mnist.common.config import project_root
from vae_mnist.common.errors import TrackingError
from vae_mnist.common.outputs import file_sha256
from vae_mnist.common.urls import redact
from vae_mnist.tracking import names
from vae_mnist.tracking.names import CHAMPION
from vae_mnist.tracking.store import first_line, require_store

SERVE_DIR = ".serve"  # at the project root: the verified copies (ignored by git and DVC)
NO_PICKLE = {"MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false"}
QUIET = {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}  # a bar per download of a few files


def verified_copy(model_name: str, version: mlflow.entities.model_registry.ModelVersion) -> Path:
    """The version's files in `.serve/<name>/v<n>`, each digest checked against its tag."""
    target = project_root() / SERVE_DIR / model_name / f"v{version.version}"
    staging = target.with_name(f".{target.name}.download")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    os.environ.update(QUIET)
    try:
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{model_name}/{version.version}", dst_path=str(staging)
        )
    except MlflowException as error:
        shutil.rmtree(staging)
        raise TrackingError(
            f"the files of {model_name} v{version.version} cannot be read: {first_line(error)}"
        ) from None
    checkpoints = sorted((staging / names.CHECKPOINT).glob("*.keras"))
    expected = {
        names.MODEL_DIGEST: (checkpoints[0] if len(checkpoints) == 1 else None),
        names.SERVED_DIGEST: staging.joinpath(*names.SERVED_FILE),
    }
    for tag, path in expected.items():
        recorded = version.tags.get(tag)
        if tag == names.SERVED_DIGEST and recorded is None:
            continue  # trained before served files had their own tag: the checkpoint's holds
        actual = file_sha256(path) if path is not None and path.is_file() else "missing"
        if recorded != actual:
            shutil.rmtree(staging)
            raise TrackingError(
                f"{model_name} v{version.version} is not what was registered: its file's sha256 "
                f"is {actual[:12]}, its {tag} tag says {str(recorded)[:12]}; not serving it"
            )
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


def serve_command(model_name: str, host: str, port: int) -> tuple[list[str], dict[str, str]]:
    """`mlflow models serve` of a verified copy of the champion, and the environment it needs,
    after checking that the alias exists (the server would otherwise start, then die on a long
    traceback)."""
    uri = require_store()  # one line for a store that is down or will not let this user in
    try:
        version = mlflow.MlflowClient(uri).get_model_version_by_alias(model_name, CHAMPION)
    except MlflowException as error:
        raise TrackingError(
            f"no version of {model_name} holds the alias {CHAMPION} in {redact(uri)}: run the "
            f"pipeline (make repro) first, or point MLFLOW_TRACKING_URI at the store that has it "
            f"({first_line(error)})"
        ) from None
    files = verified_copy(model_name, version)
    print(
        f"serving models:/{model_name}@{CHAMPION} (version {version.version}, sha256 checked) "
        f"from {redact(uri)}\n  POST http://{host}:{port}/invocations",
        flush=True,
    )
    bin_dir = str(Path(sys.executable).parent)  # the server runs `uvicorn` from the environment
    env = {
        **os.environ,
        **NO_PICKLE,
        **QUIET,
        "MLFLOW_TRACKING_URI": uri,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
    }
    command = [os.path.join(bin_dir, "mlflow"), "models", "serve", "-m", str(files)]
    command += ["--env-manager", "local", "--host", host, "--port", str(port)]
    return command, env
