"""Fetching the four MNIST files from mirrors: timeouts, retries, fall-through, verification.

A file counts as downloaded only when its decompressed content has the known sha256: any honest
mirror passes whatever gzip it used, and nothing unverified ever gets a real name in the output.
A mirror is only ever shown or logged through `redact`, so credentials in its URL stay private.
"""

from __future__ import annotations

import gzip
import hashlib
import ipaddress
import os
import re
import shutil
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import requests
from tqdm import tqdm

from vae_mnist.common.errors import DownloadError
from vae_mnist.common.urls import URL_START, redact
from vae_mnist.data.mnist import MNIST_FILES, MnistFile

MIRROR_ENV = "MNIST_MIRROR"
ALLOW_HTTP_ENV = "MNIST_MIRROR_ALLOW_HTTP"  # set to 1 to accept plain http to another machine
SUPPORTED = "a directory, file://, https://, or http:// to this machine"
PUBLIC_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
_CHUNK = 1 << 16


@dataclass(frozen=True)
class Policy:
    """How patient to be with one mirror before falling through to the next."""

    connect_timeout: float = 10.0
    read_timeout: float = 30.0  # longest silence between two chunks
    attempts: int = 3  # per mirror, for errors that may pass (timeouts, 5xx, dropped connections)
    backoff: float = 1.0  # seconds before the 2nd attempt, doubling after that
    max_bytes: int = 32 << 20  # per compressed file; the largest MNIST file is 9.9 MB


@dataclass(frozen=True)
class Fetched:
    name: str
    source: str  # credentials removed: safe to show and log
    size: int  # bytes of the .gz as received
    sha256: str  # of the decompressed content


class _Retryable(Exception):
    """This attempt failed in a way that another attempt at the same mirror may not."""


class _Rejected(Exception):
    """This mirror cannot give a good copy of the file; try the next one."""


def mirrors_from_env() -> tuple[str, ...]:
    """MNIST_MIRROR (a directory, or a URL as SUPPORTED says) replaces the public mirrors when set.

    Checked before anything runs, so that a bad value costs one line naming it, not a failed stage.
    """
    override = os.environ.get(MIRROR_ENV, "").strip()
    if not override:
        return PUBLIC_MIRRORS
    shown = f"{MIRROR_ENV}={redact(override)}"
    start = URL_START.match(override)
    scheme = start["scheme"].lower() if start else "file"
    if scheme in ("http", "https"):
        return (_checked_url(override, shown),)
    if scheme != "file":
        raise DownloadError(f"{shown}: unsupported scheme {scheme}:// (use {SUPPORTED})")
    path = Path(override[len("file://") :] if start else override).expanduser()
    if path.exists() and not path.is_dir():
        raise DownloadError(
            f"{shown}: a file, not a directory "
            "(set it to the folder that holds the four MNIST .gz files)"
        )
    if not path.is_dir():
        raise DownloadError(
            f"{shown}: no such directory "
            "(set it to a folder holding the four MNIST .gz files, or to an http(s) URL)"
        )
    return (str(path.resolve()),)


def _checked_url(url: str, shown: str) -> str:
    """Plain http to another machine is refused: the traffic, credentials included, is open to
    anyone on the way (the digest still catches tampering, but not eavesdropping)."""
    try:
        parts = urlsplit(url)
        host, _ = parts.hostname, parts.port  # .port raises on a port that is not a number
    except ValueError:
        host = None
    if not host:
        raise DownloadError(f"{shown}: not a valid http(s) URL")
    allowed = os.environ.get(ALLOW_HTTP_ENV) == "1"
    if parts.scheme == "http" and not _is_loopback(host) and not allowed:
        raise DownloadError(
            f"{shown}: plain http to {host} is unencrypted; use https, "
            f"or set {ALLOW_HTTP_ENV}=1 to allow it"
        )
    return parts.scheme + url[len(parts.scheme) :]  # HTTPS:// too, as the rest expects


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def download_all(
    out_dir: Path, mirrors: tuple[str, ...], policy: Policy = Policy()
) -> list[Fetched]:
    """Fetch every MNIST file into `out_dir` (which must exist), verified."""
    with requests.Session() as session:
        return [fetch(spec, mirrors, out_dir, session, policy) for spec in MNIST_FILES.values()]


def fetch(
    spec: MnistFile,
    mirrors: tuple[str, ...],
    out_dir: Path,
    session: requests.Session,
    policy: Policy,
) -> Fetched:
    """Try each mirror in turn; the first verified copy is renamed into place."""
    partial = out_dir / f".{spec.name}.part"
    failures = []
    for mirror in mirrors:
        source = _join(mirror, spec.name)
        shown = redact(source)
        try:
            size = _transfer(source, partial, session, policy)
            actual = _content_sha256(partial, spec)
            if actual != spec.sha256:
                raise _Rejected(
                    f"decompressed content has sha256 {actual}, expected {spec.sha256} "
                    "(a corrupt or foreign file)"
                )
        except _Rejected as error:
            partial.unlink(missing_ok=True)
            failures.append(f"{shown}: {error}")
            print(f"warning: {spec.name} from {shown}: {error}", file=sys.stderr)
            continue
        partial.rename(out_dir / spec.name)
        return Fetched(spec.name, shown, size, actual)
    raise DownloadError(f"{spec.name}: no mirror gave a good copy: " + "; ".join(failures))


def _join(mirror: str, name: str) -> str:
    if mirror.startswith(("http://", "https://")):
        return mirror.rstrip("/") + "/" + name
    return str(Path(mirror) / name)


def _transfer(source: str, dest: Path, session: requests.Session, policy: Policy) -> int:
    """Copy one file to `dest`, retrying with backoff; returns its size in bytes.

    The retries are this loop's rather than urllib3's `Retry` on the session: `Retry` covers a
    request until its response headers arrive, and a body that stops mid-file (a reset, a read
    timeout: the usual failure of a 10 MB download) comes after that, out of its reach. One loop
    serves both, and says each retry in one line without the URL's credentials."""
    if not source.startswith(("http://", "https://")):
        path = Path(source)
        if not path.is_file():
            raise _Rejected("no such file")
        if path.stat().st_size > policy.max_bytes:
            raise _Rejected(f"larger than the {policy.max_bytes}-byte cap")
        shutil.copyfile(path, dest)
        return dest.stat().st_size
    for attempt in range(1, policy.attempts + 1):
        try:
            return _http_get(source, dest, session, policy)
        except _Retryable as error:
            if attempt == policy.attempts:
                raise _Rejected(f"{error} ({attempt} attempts)") from None
            delay = policy.backoff * 2 ** (attempt - 1)
            print(f"warning: {redact(source)}: {error}; retrying in {delay:g} s", file=sys.stderr)
            time.sleep(delay)
    raise AssertionError("unreachable")


def _http_get(url: str, dest: Path, session: requests.Session, policy: Policy) -> int:
    announced = 0
    try:
        with session.get(
            url, stream=True, timeout=(policy.connect_timeout, policy.read_timeout)
        ) as response:
            if response.status_code == 429 or response.status_code >= 500:
                raise _Retryable(f"HTTP {response.status_code}")
            if response.status_code != 200:
                raise _Rejected(f"HTTP {response.status_code}")
            announced = int(response.headers.get("Content-Length") or 0)
            if announced > policy.max_bytes:
                raise _Rejected(f"announces {announced} bytes, over the {policy.max_bytes} cap")
            size = 0
            with (
                dest.open("wb") as out,
                tqdm(
                    total=announced or None,
                    unit="B",
                    unit_scale=True,
                    desc=url.rsplit("/", 1)[-1],
                    disable=None,
                    leave=False,
                ) as progress,
            ):
                for chunk in response.iter_content(_CHUNK):
                    size += len(chunk)
                    if size > policy.max_bytes:
                        raise _Rejected(f"sent more than the {policy.max_bytes}-byte cap")
                    out.write(chunk)
                    progress.update(len(chunk))
            return size
    except requests.exceptions.ChunkedEncodingError as error:
        # urllib3 raises it when the body stops short of its Content-Length (or of its last
        # chunk): the connection was reset or closed mid-file, which may not happen again.
        how = "reset" if "reset" in str(error).lower() else "closed"
        promised = f"all {announced} bytes" if announced else "the end of the file"
        raise _Retryable(f"connection {how} before {promised} arrived") from None
    except (requests.ConnectionError, requests.Timeout) as error:
        # requests wraps read timeouts in ConnectionError while streaming the body.
        raise _Retryable(_reason(error, policy)) from None
    except requests.RequestException as error:
        raise _Rejected(type(error).__name__) from None


def _reason(error: Exception, policy: Policy) -> str:
    """A fixed phrase, never the exception's text: that may quote the URL."""
    if isinstance(error, requests.ConnectTimeout):
        return f"timed out connecting ({policy.connect_timeout:g} s)"
    if isinstance(error, requests.Timeout) or "timed out" in str(error).lower():
        return f"timed out: nothing received for {policy.read_timeout:g} s"
    for what in ("refused", "reset"):
        if what in str(error).lower():
            return f"connection {what}"
    return "connection failed"


def _content_sha256(path: Path, spec: MnistFile) -> str:
    """sha256 of the decompressed content, inflating at most one chunk past the known size."""
    with path.open("rb") as raw:
        head = raw.read(64)
    if not head.startswith(b"\x1f\x8b"):
        raise _Rejected(f"not a gzip file ({_looks_like(head)})")
    digest = hashlib.sha256()
    inflated = 0
    try:
        with gzip.open(path, "rb") as stream:
            while block := stream.read(_CHUNK):
                inflated += len(block)
                if inflated > spec.size:
                    raise _Rejected(f"decompresses to more than the {spec.size} bytes MNIST has")
                digest.update(block)
    except (OSError, EOFError, zlib.error) as error:
        raise _Rejected(f"not a valid gzip file ({error})") from None
    return digest.hexdigest()


def _looks_like(head: bytes) -> str:
    """What a mirror sent instead of a gzip: an HTML page is a login or error page sent as 200."""
    if not head:
        return "empty"
    if re.search(rb"<(!doctype )?html", head, re.IGNORECASE):
        return "an HTML page: an error or login page?"
    return f"starts with {head[:8]!r}"
