"""Mirror fall-through, retries, timeouts and verification, against a real HTTP server."""

from __future__ import annotations

import gzip
import hashlib
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from vae_mnist.common.errors import DownloadError
from vae_mnist.data.mirrors import Policy, fetch
from vae_mnist.data.mnist import MnistFile

CONTENT = bytes(range(256)) * 64  # stands in for an IDX file's decompressed content


NAME = "tiny-idx1-ubyte.gz"


SPEC = MnistFile(NAME, hashlib.sha256(CONTENT).hexdigest(), len(CONTENT))


FAST = Policy(connect_timeout=1.0, read_timeout=0.3, attempts=3, backoff=0.01, max_bytes=1 << 20)


class Mirror(ThreadingHTTPServer):
    """Serves /<mirror>/<name>; each mirror behaves as its name says."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.hits: Counter[str] = Counter()
        self.release = threading.Event()
        self.bodies = {
            "good": gzip.compress(CONTENT, mtime=0),
            "corrupt": gzip.compress(CONTENT[::-1], mtime=0),
            "huge": gzip.compress(bytes(4 << 20), mtime=0)[:10] + bytes(2 << 20),
            "html": b"<!DOCTYPE html>\n<html><body>Please sign in</body></html>\n",
            "short": gzip.compress(CONTENT, mtime=0)[:-5],  # its Content-Length says so
        }
        self.flaky_failures = 2

    def url(self, mirror: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{mirror}/"


class Handler(BaseHTTPRequestHandler):
    server: Mirror

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        mirror = self.path.split("/")[1]
        self.server.hits[mirror] += 1
        if mirror == "hang":
            self.server.release.wait(10)  # says nothing until the test ends
            return
        if mirror == "down" or (
            mirror == "flaky" and self.server.hits[mirror] <= self.server.flaky_failures
        ):
            self.send_error(503)
            return
        if mirror in ("reset", "liar"):
            self.send_good_body_cut_short(reset=mirror == "reset")
            return
        if mirror == "flaky":
            mirror = "good"
        body = self.server.bodies.get(mirror)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        if mirror != "huge":  # a server that does not announce its size
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_good_body_cut_short(self, reset: bool) -> None:
        """Announce the whole good file, send part of it, then reset the connection (RST) or
        close it (FIN) as if that were all."""
        body = self.server.bodies["good"]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if reset else body[:-5])
        if reset:
            time.sleep(0.1)  # the client reads the headers: the reset comes mid-body
            linger_zero = struct.pack("ii", 1, 0)  # close() then sends RST, not FIN
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger_zero)
            self.connection.close()


@pytest.fixture
def server() -> Iterator[Mirror]:
    mirror = Mirror()
    thread = threading.Thread(target=mirror.serve_forever, daemon=True)
    thread.start()
    yield mirror
    mirror.release.set()
    mirror.shutdown()
    mirror.server_close()


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


def names_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


GOOD_SIZE = len(gzip.compress(CONTENT, mtime=0))


# Each faulty mirror: what the reason says, and how many attempts it gets (a fault that may pass
# is retried; a bad file is not).
FAULTS = {
    "html": ("not a gzip file (an HTML page: an error or login page?)", 1),
    "reset": ("connection reset", FAST.attempts),  # in the body or, on a slow day, the headers
    "short": ("not a valid gzip file (Compressed file ended before", 1),
    "liar": (f"connection closed before all {GOOD_SIZE} bytes arrived", FAST.attempts),
    "hang": (f"timed out: nothing received for {FAST.read_timeout:g} s", FAST.attempts),
}


def test_falls_through_corrupt_and_hanging_mirrors_to_a_good_one(
    server: Mirror, session: requests.Session, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mirrors = (server.url("corrupt"), server.url("hang"), server.url("good"))
    fetched = fetch(SPEC, mirrors, tmp_path, session, FAST)
    assert fetched.source == server.url("good") + NAME
    assert fetched.sha256 == SPEC.sha256
    assert (tmp_path / NAME).read_bytes() == server.bodies["good"]
    assert names_in(tmp_path) == [NAME]
    assert server.hits["corrupt"] == 1  # a bad digest is not retried
    assert server.hits["hang"] == FAST.attempts  # a timeout is
    warnings = capsys.readouterr().err
    assert f"corrupt/{NAME}: decompressed content has sha256" in warnings
    assert "timed out" in warnings


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_each_fault_is_detected_and_the_next_mirror_gives_the_verified_file(
    fault: str,
    server: Mirror,
    session: requests.Session,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    reason, attempts = FAULTS[fault]
    fetched = fetch(SPEC, (server.url(fault), server.url("good")), tmp_path, session, FAST)
    assert fetched.source == server.url("good") + NAME
    assert (tmp_path / NAME).read_bytes() == server.bodies["good"]
    assert names_in(tmp_path) == [NAME]  # the faulty copy left nothing behind
    assert server.hits[fault] == attempts
    assert f"warning: {NAME} from {server.url(fault)}{NAME}: {reason}" in capsys.readouterr().err


def test_when_no_mirror_is_good_one_error_names_the_file_and_each_reason(
    server: Mirror, session: requests.Session, tmp_path: Path
) -> None:
    mirrors = tuple(server.url(fault) for fault in FAULTS)
    with pytest.raises(DownloadError) as caught:
        fetch(SPEC, mirrors, tmp_path, session, FAST)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{NAME}: no mirror gave a good copy: ")
    for fault, (reason, _) in FAULTS.items():
        assert f"{server.url(fault)}{NAME}: {reason}" in message
    assert names_in(tmp_path) == []


def test_retries_a_transient_error_with_backoff(
    server: Mirror, session: requests.Session, tmp_path: Path
) -> None:
    fetched = fetch(SPEC, (server.url("flaky"),), tmp_path, session, FAST)
    assert fetched.source == server.url("flaky") + NAME
    assert server.hits["flaky"] == 3


def test_gives_up_after_its_attempts(
    server: Mirror, session: requests.Session, tmp_path: Path
) -> None:
    with pytest.raises(DownloadError, match=r"HTTP 503 \(3 attempts\)"):
        fetch(SPEC, (server.url("down"),), tmp_path, session, FAST)
    assert server.hits["down"] == 3
    assert names_in(tmp_path) == []


def test_checksum_mismatch_names_file_mirror_and_both_digests(
    server: Mirror, session: requests.Session, tmp_path: Path
) -> None:
    with pytest.raises(DownloadError) as caught:
        fetch(SPEC, (server.url("corrupt"),), tmp_path, session, FAST)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(NAME)
    assert server.url("corrupt") + NAME in message
    assert SPEC.sha256 in message
    assert hashlib.sha256(CONTENT[::-1]).hexdigest() in message
    assert names_in(tmp_path) == []  # no partial file left behind


def test_a_file_over_the_size_cap_is_refused(
    server: Mirror, session: requests.Session, tmp_path: Path
) -> None:
    with pytest.raises(DownloadError, match="sent more than the 1048576-byte cap"):
        fetch(SPEC, (server.url("huge"),), tmp_path, session, FAST)
    assert names_in(tmp_path) == []


def test_missing_file_falls_through(
    server: Mirror, session: requests.Session, tmp_path: Path
) -> None:
    fetched = fetch(SPEC, (server.url("nothing-here"), server.url("good")), tmp_path, session, FAST)
    assert fetched.source.startswith(server.url("good"))
    assert server.hits["nothing-here"] == 1


def test_local_directory_mirror_accepts_any_honest_gzip(
    session: requests.Session, tmp_path: Path
) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / NAME).write_bytes(gzip.compress(CONTENT, compresslevel=1, mtime=12345))
    out = tmp_path / "out"
    out.mkdir()
    fetched = fetch(SPEC, (str(mirror),), out, session, FAST)
    assert fetched.source == str(mirror / NAME)
    assert names_in(out) == [NAME]


def test_truncated_gzip_is_rejected(session: requests.Session, tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / NAME).write_bytes(gzip.compress(CONTENT)[:-20])
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(DownloadError, match="not a valid gzip file"):
        fetch(SPEC, (str(mirror),), out, session, FAST)
    assert names_in(out) == []
