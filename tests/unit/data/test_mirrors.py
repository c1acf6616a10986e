"""Tests of data/mirrors.py: MNIST_MIRROR, every value a user may set, and credentials in it.

Every value in `mirrors_from_env()` and through the download stage's CLI; credentials in a
mirror URL are used, and never shown or logged."""

from __future__ import annotations

import base64
import functools
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import mlflow
import pytest

from tests.support.data import file_table
from tests.support.mirrors import SECRET, USER
from vae_mnist.common.config import Config
from vae_mnist.common.errors import DownloadError
from vae_mnist.common.urls import redact
from vae_mnist.data import mirrors
from vae_mnist.data.mirrors import (
    ALLOW_HTTP_ENV,
    MIRROR_ENV,
    PUBLIC_MIRRORS,
    Policy,
    mirrors_from_env,
)
from vae_mnist.stages.download import download

QUICK = Policy(connect_timeout=2.0, read_timeout=2.0, attempts=1, backoff=0.01)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Neither variable set, whatever the shell running the tests has."""
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    monkeypatch.delenv(ALLOW_HTTP_ENV, raising=False)
    return monkeypatch


def refusal(env: pytest.MonkeyPatch, value: str) -> str:
    """The one-line message mirrors_from_env gives for MNIST_MIRROR=`value`."""
    env.setenv(MIRROR_ENV, value)
    with pytest.raises(DownloadError) as caught:
        mirrors_from_env()
    message = str(caught.value)
    assert "\n" not in message
    return message


class AuthMirror(ThreadingHTTPServer):
    """Serves a folder over http on 127.0.0.1 to whoever sends USER:SECRET, and 401 otherwise."""

    daemon_threads = True

    def __init__(self, folder: Path) -> None:
        super().__init__(("127.0.0.1", 0), functools.partial(AuthHandler, directory=folder))
        self.authorized = 0

    def url(self) -> str:
        return f"http://{USER}:{SECRET}@127.0.0.1:{self.server_address[1]}/"


class AuthHandler(SimpleHTTPRequestHandler):
    server: AuthMirror

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        token = base64.b64encode(f"{USER}:{SECRET}".encode()).decode()
        if self.headers.get("Authorization") != f"Basic {token}":
            self.send_error(401)
            return
        self.server.authorized += 1
        super().do_GET()


@pytest.fixture
def auth_mirror(raw_dir: Path) -> Iterator[AuthMirror]:
    server = AuthMirror(raw_dir)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_unset_or_blank_means_the_public_https_mirrors(env: pytest.MonkeyPatch) -> None:
    assert mirrors_from_env() == PUBLIC_MIRRORS
    assert all(m.startswith("https://") for m in PUBLIC_MIRRORS)
    env.setenv(MIRROR_ENV, "  ")
    assert mirrors_from_env() == PUBLIC_MIRRORS


def test_a_directory_or_file_url_is_used_resolved(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env.setenv(MIRROR_ENV, str(tmp_path))
    assert mirrors_from_env() == (str(tmp_path.resolve()),)
    env.setenv(MIRROR_ENV, f"file://{tmp_path}")
    assert mirrors_from_env() == (str(tmp_path.resolve()),)


def test_a_missing_directory_says_so(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert refusal(env, str(tmp_path / "gone")) == (
        f"{MIRROR_ENV}={tmp_path / 'gone'}: no such directory "
        "(set it to a folder holding the four MNIST .gz files, or to an http(s) URL)"
    )


def test_a_file_instead_of_a_directory_has_its_own_message(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    one_file = tmp_path / "train-images-idx3-ubyte.gz"
    one_file.write_bytes(b"")
    message = refusal(env, str(one_file))
    assert message.startswith(f"{MIRROR_ENV}={one_file}: a file, not a directory")
    assert "no such directory" not in message


def test_an_unsupported_scheme_is_named_with_those_supported(env: pytest.MonkeyPatch) -> None:
    message = refusal(env, "ftp://ftp.example.org/mnist/")
    assert message == (
        f"{MIRROR_ENV}=ftp://ftp.example.org/mnist/: unsupported scheme ftp:// "
        "(use a directory, file://, https://, or http:// to this machine)"
    )


def test_plain_http_to_another_host_is_refused_unless_allowed(env: pytest.MonkeyPatch) -> None:
    url = "http://mirror.example.org/mnist/"
    assert refusal(env, url) == (
        f"{MIRROR_ENV}={url}: plain http to mirror.example.org is unencrypted; use https, "
        f"or set {ALLOW_HTTP_ENV}=1 to allow it"
    )
    env.setenv(ALLOW_HTTP_ENV, "0")
    refusal(env, url)
    env.setenv(ALLOW_HTTP_ENV, "1")
    assert mirrors_from_env() == (url,)


@pytest.mark.parametrize(
    "url",
    [
        "https://mirror.example.org/mnist/",
        "HTTPS://mirror.example.org/mnist/",
        "http://127.0.0.1:8000/mnist/",
        "http://127.8.9.10/mnist/",
        "http://[::1]:8000/mnist/",
        "http://localhost/mnist/",
    ],
)
def test_https_anywhere_and_http_to_this_machine_are_accepted(
    env: pytest.MonkeyPatch, url: str
) -> None:
    env.setenv(MIRROR_ENV, url)
    (mirror,) = mirrors_from_env()
    assert mirror.lower() == url.lower() and mirror.startswith(("http://", "https://"))


@pytest.mark.parametrize("url", ["http://", "https://host:port/mnist/", "https://[::1/mnist/"])
def test_a_malformed_url_is_refused(env: pytest.MonkeyPatch, url: str) -> None:
    assert refusal(env, url) == f"{MIRROR_ENV}={url}: not a valid http(s) URL"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"https://{USER}:{SECRET}@host:8443/path/", "https://host:8443/path/"),
        (f"http://{USER}@127.0.0.1/path/", "http://127.0.0.1/path/"),
        (f"ftp://{USER}:{SECRET}@host/", "ftp://host/"),
        (f"https://{USER}:{SECRET}@evil@host/", "https://host/"),  # an unescaped @
        ("https://host/a@b/", "https://host/a@b/"),  # an @ in the path is no credential
        ("/srv/mnist@2024", "/srv/mnist@2024"),
    ],
)
def test_redact_removes_user_and_password_only(url: str, shown: str) -> None:
    assert redact(url) == shown


def test_credentials_are_kept_for_use_and_kept_out_of_every_message(
    env: pytest.MonkeyPatch,
) -> None:
    url = f"https://{USER}:{SECRET}@mirror.example.org/mnist/"
    env.setenv(MIRROR_ENV, url)
    assert mirrors_from_env() == (url,)
    for refused in (
        f"http://{USER}:{SECRET}@mirror.example.org/mnist/",
        f"ftp://{USER}:{SECRET}@mirror.example.org/mnist/",
        f"https://{USER}:{SECRET}@mirror.example.org:port/mnist/",
    ):
        message = refusal(env, refused)
        assert "mirror.example.org" in message
        assert SECRET not in message and USER not in message


def test_download_uses_the_credentials_and_logs_the_mirror_without_them(
    config: Config,
    raw_dir: Path,
    auth_mirror: AuthMirror,
    tmp_path: Path,
    mlflow_store: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    table = file_table(raw_dir)  # the stage's own table names MNIST's files
    monkeypatch.setattr(mirrors, "MNIST_FILES", table)
    monkeypatch.setenv(MIRROR_ENV, auth_mirror.url())
    monkeypatch.delenv(ALLOW_HTTP_ENV, raising=False)

    fetched = download(config, tmp_path / "data" / "raw", QUICK)

    assert auth_mirror.authorized == len(table)  # the credentials were sent, and accepted
    shown = redact(auth_mirror.url())
    assert [f.source for f in fetched] == [shown + name for name in table]
    client = mlflow.MlflowClient(mlflow_store)
    experiment = client.get_experiment_by_name(config.mlflow.experiment_name)
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.data.params["mirrors"] == shown
    assert all(run.data.params[f"{name}.source"] == shown + name for name in table)
    logged = " ".join([*run.data.params.values(), *run.data.tags.values()])
    captured = capsys.readouterr()
    for text in (logged, captured.out, captured.err):
        assert SECRET not in text and USER not in text
    for path in tmp_path.rglob("*"):  # the store and anything it keeps beside it
        assert not path.is_file() or SECRET.encode() not in path.read_bytes(), path
