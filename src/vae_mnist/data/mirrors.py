"""Fetching the four MNIST files from mirrors: timeouts, retries, fall-through, verification.

A file counts as downloaded only when its decompressed content has the known sha256: any honest
mirror passes whatever gzip it used, and nothing unverified ever gets a real name in the output.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import requests
from tqdm import tqdm

from vae_mnist.data.raw import MNIST_FILES, MnistFile
from vae_mnist.errors import DownloadError

MIRROR_ENV = "MNIST_MIRROR"
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
    source: str
    size: int  # bytes of the .gz as received
    sha256: str  # of the decompressed content


class _Retryable(Exception):
    """This attempt failed in a way that another attempt at the same mirror may not."""


class _Rejected(Exception):
    """This mirror cannot give a good copy of the file; try the next one."""


def mirrors_from_env() -> tuple[str, ...]:
    """MNIST_MIRROR (a directory or an http(s) URL) replaces the public mirrors when set."""
    override = os.environ.get(MIRROR_ENV, "").strip()
    if not override:
        return PUBLIC_MIRRORS
    if override.startswith(("http://", "https://")):
        if not urlparse(override).netloc:
            raise DownloadError(f"{MIRROR_ENV}={override}: not a valid http(s) URL")
        return (override,)
    path = Path(override.removeprefix("file://")).expanduser()
    if not path.is_dir():
        raise DownloadError(
            f"{MIRROR_ENV}={override}: no such directory "
            "(set it to a folder holding the four MNIST .gz files, or to an http(s) URL)"
        )
    return (str(path.resolve()),)


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
            failures.append(f"{source}: {error}")
            print(f"warning: {spec.name} from {source}: {error}", file=sys.stderr)
            continue
        partial.rename(out_dir / spec.name)
        return Fetched(spec.name, source, size, actual)
    raise DownloadError(f"{spec.name}: no mirror gave a good copy: " + "; ".join(failures))


def _join(mirror: str, name: str) -> str:
    if mirror.startswith(("http://", "https://")):
        return mirror.rstrip("/") + "/" + name
    return str(Path(mirror) / name)


def _transfer(source: str, dest: Path, session: requests.Session, policy: Policy) -> int:
    """Copy one file to `dest`, retrying with backoff; returns its size in bytes."""
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
            print(f"warning: {source}: {error}; retrying in {delay:g} s", file=sys.stderr)
            time.sleep(delay)
    raise AssertionError("unreachable")


def _http_get(url: str, dest: Path, session: requests.Session, policy: Policy) -> int:
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
    except (requests.ConnectionError, requests.Timeout) as error:
        # requests wraps read timeouts in ConnectionError while streaming the body.
        raise _Retryable(_reason(error)) from None
    except requests.RequestException as error:
        raise _Rejected(_reason(error)) from None


def _reason(error: Exception) -> str:
    if isinstance(error, requests.Timeout) or "timed out" in str(error).lower():
        return "timed out"
    if isinstance(error, requests.ConnectionError):
        return "connection failed"
    return type(error).__name__


def _content_sha256(path: Path, spec: MnistFile) -> str:
    """sha256 of the decompressed content, inflating at most one chunk past the known size."""
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
