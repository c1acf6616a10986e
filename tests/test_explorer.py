"""The explorer's endpoints, against real registered versions: two tiny models trained and
evaluated by the stages on synthetic data in a temporary sqlite store (v1 with a 2-d latent
space, v2 with a 3-d one, shown on its PCA plane)."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pytest

from vae_mnist.common.ports import free_port
from vae_mnist.evaluation.figures import latent_projection
from vae_mnist.model.files import load_vae

from .conftest import REPO, override, write_raw
from .registered import Store, explorer, register

TEST_IMAGES = 120


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    from vae_mnist.common.config import PARAMS_FILE, load_config

    tiny = override(
        load_config(REPO / PARAMS_FILE),
        {
            "data.val_size": 20,
            "model.mlp.hidden_units": [16],
            "train.epochs": 1,
            "train.batch_size": 30,
            "evaluate.iwae_samples": 2,
        },
    )
    folder = tmp_path_factory.mktemp("explorer")
    raw = write_raw(folder / "raw", test=TEST_IMAGES)
    return register(folder, raw, [tiny, override(tiny, {"model.latent_dim": 3})])


@pytest.fixture(scope="module")
def client(store: Store) -> Iterator:
    from fastapi.testclient import TestClient

    from vae_mnist.apps.explorer.app import create_app
    from vae_mnist.apps.explorer.library import Library

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", store.uri)
        mlflow.set_tracking_uri(store.uri)
        library = Library("vae-mnist", store.processed)
        try:
            yield TestClient(create_app(library, "champion"))
        finally:
            library.close()
            mlflow.set_tracking_uri(None)


def images(response: dict) -> np.ndarray:
    """The response's images as (N, 28, 28) in [0, 1]."""
    raw = [np.frombuffer(base64.b64decode(b), np.uint8) for b in response["images"]]
    return np.stack(raw).reshape(-1, 28, 28) / 255


def decoded(model: Path, codes: np.ndarray) -> np.ndarray:
    """The model file's own decoder at these codes, for comparison."""
    decoder = load_vae(model).decoder
    return 1 / (1 + np.exp(-np.asarray(decoder(np.asarray(codes, np.float32)))[..., 0]))


def latent(store: Store, n: int) -> tuple[np.ndarray, np.ndarray]:
    folder = store.evaluations[n - 1] / "latent"
    return np.load(folder / "z_mean.npy"), np.load(folder / "labels.npy")


def test_versions_lists_each_version_newest_first_with_aliases_metrics_and_run(
    client, store: Store
) -> None:
    listing = client.get("/api/versions").json()
    assert [v["version"] for v in listing["versions"]] == ["2", "1"]
    runs = mlflow.MlflowClient(store.uri)
    champion = runs.get_model_version_by_alias("vae-mnist", "champion")
    assert listing["default"] == str(champion.version)  # "champion", looked up
    for v in listing["versions"]:
        version = runs.get_model_version("vae-mnist", v["version"])
        run = runs.get_run(version.run_id)
        assert v["run_id"] == version.run_id
        assert v["aliases"] == (["champion"] if v["version"] == str(champion.version) else [])
        assert v["metrics"]["test/neg_elbo"] == run.data.metrics["test/neg_elbo"]
        assert all(name.startswith("test/") for name in v["metrics"])
        assert v["run_url"] == (
            f"http://127.0.0.1:5000/#/experiments/{run.info.experiment_id}/runs/{version.run_id}"
        )


def test_a_version_by_number_or_alias_is_its_evaluation_s_latent_means_on_its_plane(
    client, store: Store
) -> None:
    by_alias = client.get("/api/versions/@champion").json()
    assert by_alias == client.get(f"/api/versions/{by_alias['version']}").json()
    assert client.get("/api/versions/v1").json()["version"] == "1"
    for n in (1, 2):
        shown = client.get(f"/api/versions/{n}").json()
        z_mean, labels = latent(store, n)
        assert shown["latent_dim"] == z_mean.shape[1] == n + 1
        assert shown["principal"] == (n == 2)
        assert shown["labels"] == labels.tolist() and len(labels) == TEST_IMAGES
        points, _ = latent_projection(z_mean)  # what the latent-space figure draws
        np.testing.assert_allclose(shown["points"], points, atol=1e-4)
        assert shown["test_images"] is True


def test_decode_is_the_registered_decoder_at_the_point_of_the_plane(client, store: Store) -> None:
    points = np.array([[0.0, 0.0], [1.5, -2.0], [-3.0, 0.25]])
    answer = client.post("/api/decode", json={"version": "1", "points": points.tolist()}).json()
    assert answer["version"] == "1"
    np.testing.assert_allclose(images(answer), decoded(store.models[0], points), atol=0.5 / 255)

    # a 3-d space: the plane through the means' centre along their top two principal directions
    z_mean, _ = latent(store, 2)
    centre = z_mean.mean(axis=0)
    _, _, vt = np.linalg.svd(z_mean - centre, full_matrices=False)
    answer = client.post("/api/decode", json={"version": "2", "points": points.tolist()}).json()
    codes = centre + points @ vt[:2]
    np.testing.assert_allclose(images(answer), decoded(store.models[1], codes), atol=1 / 255)


def test_interpolation_runs_from_one_test_image_s_code_to_the_other_s(client, store: Store) -> None:
    z_mean, labels = latent(store, 2)
    answer = client.get("/api/interpolate", params={"version": "2", "a": 3, "b": 17, "steps": 7})
    answer = answer.json()
    assert answer["labels"] == [labels[3], labels[17]]
    t = np.linspace(0, 1, 7)[:, None]
    codes = (1 - t) * z_mean[3] + t * z_mean[17]
    np.testing.assert_allclose(images(answer), decoded(store.models[1], codes), atol=1 / 255)


def test_test_images_are_the_preprocess_stage_s(client, store: Store) -> None:
    shown = images({"images": [client.get("/api/test-images/5").json()["image"]]})[0]
    expected = np.load(store.processed / "test_images.npy")[5]
    np.testing.assert_allclose(shown, expected, atol=0.5 / 255)


@pytest.mark.parametrize(
    ("call", "status", "message"),
    [
        (("get", "/api/versions/7"), 404, "vae-mnist has no version 7 (it has 2, 1)"),
        (("get", "/api/versions/best"), 404, "no version of vae-mnist holds the alias 'best'"),
        (
            ("post", "/api/decode", {"version": "9", "points": [[0, 0]]}),
            404,
            "vae-mnist has no version 9",
        ),
        (
            ("post", "/api/decode", {"version": "1", "points": [[0, 0, 0]]}),
            422,
            "bad request: points.0: List should have at most 2 items",
        ),
        (
            ("post", "/api/decode", {"version": "1", "points": [[0, 0]] * 1025}),
            422,
            "bad request: points: List should have at most 1024 items",
        ),
        (
            ("get", "/api/interpolate?version=1&a=0&b=1&steps=1"),
            422,
            "bad request: query.steps: Input should be greater than or equal to 2",
        ),
        (
            ("get", f"/api/interpolate?version=1&a=0&b={TEST_IMAGES}"),
            404,
            f"no test image {TEST_IMAGES}: there are {TEST_IMAGES}",
        ),
        (("get", "/api/test-images/-1"), 404, "no test image -1"),
    ],
)
def test_a_bad_request_is_one_line_that_names_it(client, call, status, message) -> None:
    method, path, *body = call
    response = getattr(client, method)(path, **({"json": body[0]} if body else {}))
    assert response.status_code == status
    assert response.json()["error"].startswith(message)
    assert "\n" not in response.json()["error"]


def test_a_version_without_a_decoder_or_latent_means_is_named(
    client, store: Store, tmp_path: Path
) -> None:
    runs = mlflow.MlflowClient(store.uri)
    try:
        versions_without(client, runs, tmp_path)
    finally:  # the other tests see versions 1 and 2 only
        for added in runs.search_model_versions("name = 'vae-mnist'"):
            if int(added.version) > 2:
                runs.delete_model_version("vae-mnist", added.version)


def versions_without(client, runs: mlflow.MlflowClient, tmp_path: Path) -> None:
    experiment = runs.get_experiment_by_name("vae-mnist").experiment_id
    with mlflow.start_run(experiment_id=experiment) as run:  # a model of some other kind
        mlflow.log_text("not a VAE", "model/MLmodel")
    version = runs.create_model_version(
        "vae-mnist", f"{run.info.artifact_uri}/model", run.info.run_id
    )
    answer = client.get(f"/api/versions/{version.version}")
    assert answer.status_code == 404
    assert answer.json()["error"].startswith(f"vae-mnist v{version.version} has no decoder")

    # the files of v1, registered again from a run that no evaluation has seen
    files = mlflow.artifacts.download_artifacts("models:/vae-mnist/1", dst_path=str(tmp_path))
    with mlflow.start_run(experiment_id=experiment) as run:
        mlflow.log_artifacts(files, "model")
    version = runs.create_model_version(
        "vae-mnist", f"{run.info.artifact_uri}/model", run.info.run_id
    )
    answer = client.get(f"/api/versions/{version.version}").json()  # no digest to check against
    assert answer["error"].startswith(f"vae-mnist v{version.version} is not what was registered")
    assert answer["error"].endswith("its model.sha256 tag says None")

    digest = runs.get_model_version("vae-mnist", "1").tags["model.sha256"]
    version = runs.create_model_version(
        "vae-mnist", f"{run.info.artifact_uri}/model", run.info.run_id,
        tags={"model.sha256": digest},
    )  # fmt: skip
    answer = client.get(f"/api/versions/{version.version}").json()
    assert answer["error"] == (
        f"vae-mnist v{version.version} has no latent means from an evaluation (no latent/ in its "
        f"training run {run.info.run_id}; evaluated before the explorer existed, or never): "
        "open a version evaluated since (make explore EXPLORE_VERSION=<number>)"
    )


def run_cli(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`vae-mnist explore` run as a user runs it, from `cwd`."""
    return subprocess.run(
        [sys.executable, "-m", "vae_mnist", "explore", "--port", str(free_port()), *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO / "src"), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.processes
def test_without_a_store_the_explorer_says_so_in_one_line_and_creates_none(
    tmp_path: Path,
) -> None:
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")  # a project with no runs yet
    (tmp_path / "params.yaml").write_bytes((REPO / "params.yaml").read_bytes())
    env = {key: value for key, value in os.environ.items() if key != "MLFLOW_TRACKING_URI"}
    result = subprocess.run(
        [sys.executable, "-m", "vae_mnist", "explore"],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(REPO / "src")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"error: no MLflow store at {tmp_path / 'mlflow.db'}: run the pipeline (make repro) "
        "first, or point MLFLOW_TRACKING_URI at the store that has the models"
    )
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.processes
def test_a_store_that_does_not_answer_or_has_no_such_version_is_one_line(
    store: Store, tmp_path: Path
) -> None:
    (tmp_path / "params.yaml").write_bytes((REPO / "params.yaml").read_bytes())
    down = run_cli(tmp_path, {"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}"})
    assert down.returncode == 1 and len(down.stderr.strip().splitlines()) == 1, down.stderr
    assert "cannot be used" in down.stderr and "Traceback" not in down.stderr

    result = run_cli(tmp_path, {"MLFLOW_TRACKING_URI": store.uri}, "--version", "12")
    assert result.returncode == 1
    assert result.stderr.strip() == "error: vae-mnist has no version 12 (it has 2, 1)"


@pytest.mark.processes
def test_the_explorer_serves_its_page_and_reports_errors_in_the_terminal_too(
    store: Store,
) -> None:
    import requests

    with explorer(store, "--version", "1") as running:
        page = requests.get(running.url, timeout=10)
        assert page.status_code == 200 and "/static/explorer.js" in page.text
        script = requests.get(f"{running.url}static/explorer.js", timeout=10)
        assert script.status_code == 200 and "/api/decode" in script.text
        assert requests.get(f"{running.url}api/versions", timeout=10).json()["default"] == "1"
        missing = requests.get(f"{running.url}api/versions/42", timeout=10)
        assert missing.json()["error"] == "vae-mnist has no version 42 (it has 2, 1)"
    printed = "".join(running.lines)
    assert "ERROR: vae-mnist has no version 42 (it has 2, 1)\n" in printed
    assert "Traceback" not in printed
