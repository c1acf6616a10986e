"""Registered versions made by the real stages, in a sqlite store of their own, and the explorer
started on them as a user starts it: what the explorer's tests look at."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.paths import REPO
from vae_mnist.common.config import Config
from vae_mnist.common.pipeline import PIPELINE_FILE
from vae_mnist.common.ports import free_port


@dataclass(frozen=True)
class Store:
    uri: str
    folder: Path  # the store's folder: the sqlite file, artifacts, the stages' outs
    processed: Path  # the preprocess stage's out
    models: list[Path]  # the model file of version 1, 2, ...
    evaluations: list[Path]  # the evaluate stage's out of each


def register(folder: Path, raw: Path, configs: Sequence[Config]) -> Store:
    """Preprocess `raw` once, then train and evaluate each config: version n is configs[n-1]."""
    import mlflow

    from vae_mnist.stages.evaluate import evaluate
    from vae_mnist.stages.preprocess import preprocess
    from vae_mnist.stages.train import train

    uri = f"sqlite:///{folder / 'mlflow.db'}"
    processed = folder / "processed"
    models, evaluations = [], []
    shutil.copy(REPO / PIPELINE_FILE, folder)  # a stage runs in its project: its params are there
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.chdir(folder)  # the default artifact folder lands here
        preprocess(configs[0], raw, processed)
        for n, config in enumerate(configs, start=1):
            model, history = folder / f"v{n}" / "vae.keras", folder / f"v{n}" / "training"
            train(config, processed, model, history)
            evaluations.append(folder / f"v{n}" / "evaluation")
            evaluate(config, model, processed, history, evaluations[-1])
            models.append(model)
    mlflow.set_tracking_uri(None)
    return Store(uri, folder, processed, models, evaluations)


@dataclass(frozen=True)
class Running:
    url: str
    lines: list[str]  # what it printed so far (stdout and stderr)


@contextmanager
def explorer(store: Store, *args: str) -> Iterator[Running]:
    """`vae-mnist explore` on the store, on a free port. Stopped by PID."""
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": store.uri, "PYTHONPATH": str(REPO / "src")}
    command = [sys.executable, "-m", "vae_mnist", "explore", "--port", str(port), *args]
    process = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        url = f"http://127.0.0.1:{port}/"
        lines = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            lines.append(line)
            if f"open {url}" in line or not line:
                break
        assert f"open {url}" in "".join(lines), f"the explorer did not start: {''.join(lines)}"
        _wait_for(url, deadline)
        threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True).start()
        yield Running(url, lines)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_for(url: str, deadline: float) -> None:
    import requests

    while True:
        try:
            requests.get(url, timeout=5)
            return
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
