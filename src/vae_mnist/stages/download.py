"""The `download` stage: the four MNIST files, verified, into one folder."""

from __future__ import annotations

from pathlib import Path

from vae_mnist.common.config import Config
from vae_mnist.common.outputs import atomic_directory
from vae_mnist.common.pipeline import own_name
from vae_mnist.common.urls import redact
from vae_mnist.data.mirrors import Fetched, Policy, download_all, mirrors_from_env
from vae_mnist.tracking import runs

STAGE = own_name(__name__)


def download(config: Config, out_dir: Path, policy: Policy = Policy()) -> list[Fetched]:
    """`out_dir` ends up holding the four verified files, or is untouched.

    Mirrors and sources are logged redacted: a URL's credentials must not reach the MLflow store.
    """
    mirrors = mirrors_from_env()
    shown = " ".join(redact(mirror) for mirror in mirrors)
    with runs.stage_run(STAGE, config.mlflow.experiment_name, {"mirrors": shown}):
        with atomic_directory(out_dir) as staging:
            fetched = download_all(staging, mirrors, policy)
        for item in fetched:
            runs.log(
                params={f"{item.name}.source": item.source, f"{item.name}.sha256": item.sha256},
                metrics={f"{item.name}.bytes": item.size},
            )
    return fetched
