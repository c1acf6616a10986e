"""Writing stage outputs all-or-nothing and byte-stable: the one way every stage writes.

DVC deletes a stage's outs before it runs the stage, so a stage that fails under `dvc repro`
leaves no out at all (`dvc checkout` brings back the last good one from the cache). What these
writers add: no half-written file ever carries an out's name, for DVC to hash into its cache or
for a script run by hand to leave behind, and a stage run outside DVC keeps the previous output
when it fails. The same content is always the same bytes, so DVC sees no change that is not there.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """Yield an empty directory that replaces `target` whole on success and vanishes on failure."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield staging
        staging.chmod(0o755)
        if target.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
            os.replace(target, retired / target.name)
            os.replace(staging, target)
            shutil.rmtree(retired)
        else:
            os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@contextmanager
def atomic_file(target: Path) -> Iterator[Path]:
    """Yield a path beside `target` to write: it becomes `target` on success, and is gone on
    failure."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.tmp")
    try:
        yield staging
        os.replace(staging, target)
    finally:
        staging.unlink(missing_ok=True)


def json_text(data: Any) -> str:
    """Sorted keys and a trailing newline: the same data is always the same bytes."""
    return json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n"


def file_sha256(path: Path) -> str:
    """A file's content digest (read in chunks: the training images are 172 MB)."""
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()
