"""The explorer's endpoints, against real registered versions: two tiny models trained and
evaluated by the stages on synthetic data in a temporary sqlite store (v1 with a 2-d latent
space, v2 with a 3-d one, shown on its PCA plane)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pytest

from tests.support.explorer import (
    TEST_IMAGES,
)
from tests.support.registered import Store
from vae_mnist.evaluation.figures import latent_projection
from vae_mnist.model.files import load_vae


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
