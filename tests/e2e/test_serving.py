"""Tests of tracking/serving.py: `make serve` serves a copy of the champion whose files are the
ones its version recorded, with MLflow's pickle deserialization off; a file changed in the
artifact store after registration is refused in one line, and nothing is served."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest

from tests.support.workspace import Repo
from vae_mnist.common.errors import TrackingError
from vae_mnist.common.outputs import file_sha256
from vae_mnist.tracking import names
from vae_mnist.tracking.serving import SERVE_DIR, serve_command

MODEL = "vae-mnist"


@pytest.fixture
def in_pipeline(pipeline: Repo, monkeypatch: pytest.MonkeyPatch) -> Iterator[Repo]:
    """This process works in a copy of the built pipeline, on its own sqlite store."""
    monkeypatch.chdir(pipeline.root)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    yield pipeline
    mlflow.set_tracking_uri(None)


def logged_file(repo: Repo, *parts: str) -> Path:
    """A file of the champion's logged model, in the store's own artifact folder."""
    (found,) = repo.root.glob(f"mlartifacts/models/*/artifacts/{'/'.join(parts)}")
    return found


def test_the_champion_is_served_from_a_checked_copy_without_pickle(in_pipeline: Repo) -> None:
    command, env = serve_command(MODEL, "127.0.0.1", 5001)
    copy = in_pipeline.root / SERVE_DIR / MODEL / "v1"
    assert command[command.index("-m") + 1] == str(copy)
    assert env["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] == "false"
    tags = mlflow.MlflowClient().get_model_version(MODEL, "1").tags
    assert file_sha256(copy / names.CHECKPOINT / "vae.keras") == tags[names.MODEL_DIGEST]
    assert file_sha256(copy.joinpath(*names.SERVED_FILE)) == tags[names.SERVED_DIGEST]
    assert tags[names.MODEL_DIGEST] == file_sha256(in_pipeline.root / "models" / "vae.keras")


@pytest.mark.parametrize(
    ("parts", "tag"),
    [
        ((names.CHECKPOINT, "vae.keras"), names.MODEL_DIGEST),
        (names.SERVED_FILE, names.SERVED_DIGEST),
    ],
)
def test_a_file_changed_after_registration_is_not_served(
    in_pipeline: Repo, parts: tuple[str, ...], tag: str
) -> None:
    changed = logged_file(in_pipeline, *parts)
    data = bytearray(changed.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one byte, as tampering would
    changed.write_bytes(bytes(data))
    with pytest.raises(TrackingError) as refused:
        serve_command(MODEL, "127.0.0.1", 5001)
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(f"{MODEL} v1 is not what was registered: its file's sha256 is ")
    assert f"its {tag} tag says " in message and message.endswith("; not serving it")
    assert list((in_pipeline.root / SERVE_DIR / MODEL).iterdir()) == []  # no copy kept
