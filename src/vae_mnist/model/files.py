"""Model files: a .keras file with the same bytes for the same weights, written atomically, and
read back in Keras' safe mode with one line for a file that is not a model."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import keras

from vae_mnist.common.errors import RESTORE_HINT, DataError
from vae_mnist.common.outputs import atomic_file
from vae_mnist.model.vae import VAE

_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry


def save_vae(model: keras.Model, path: Path) -> None:
    """Save as .keras with the same bytes for the same weights, replacing `path` atomically.

    Keras stamps `date_saved` into metadata.json, the save time into each zip entry, and
    `shared_object_id`s that are memory addresses into config.json; all three are normalised.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = path.with_name(f".{path.stem}.raw.keras")  # Keras wants the suffix
    try:
        model.save(raw)
        with atomic_file(path) as staged, zipfile.ZipFile(raw) as source:
            _copy_normalised(source, staged)
    finally:
        raw.unlink(missing_ok=True)


def _copy_normalised(source: zipfile.ZipFile, staged: Path) -> None:
    """The entries of a .keras file, without clocks and addresses."""
    with zipfile.ZipFile(staged, "w") as target:
        for entry in source.infolist():
            content = source.read(entry)
            if entry.filename == "metadata.json":
                metadata = json.loads(content)
                metadata.pop("date_saved", None)
                content = json.dumps(metadata, sort_keys=True).encode()
            elif entry.filename == "config.json":
                content = json.dumps(_renumber_shared_ids(json.loads(content))).encode()
            info = zipfile.ZipInfo(entry.filename, date_time=_EPOCH)
            info.compress_type = entry.compress_type
            info.external_attr = 0o644 << 16
            target.writestr(info, content)


def _renumber_shared_ids(config: Any, ids: dict[int, int] | None = None) -> Any:
    """Replace memory-address `shared_object_id`s by 1, 2, ... in order of appearance."""
    ids = {} if ids is None else ids
    if isinstance(config, dict):
        return {
            key: ids.setdefault(value, len(ids) + 1)
            if key == "shared_object_id"
            else _renumber_shared_ids(value, ids)
            for key, value in config.items()
        }
    if isinstance(config, list):
        return [_renumber_shared_ids(item, ids) for item in config]
    return config


def load_vae(path: Path) -> VAE:
    """Load a model written by `save_vae`, in Keras' safe mode (no arbitrary code).

    A changed byte fails the zip's CRC-32 check, a truncated file fails to open: either way the
    stage that reads the file stops with one line naming it (Keras calls a truncated file "not
    found").
    """
    if not path.is_file():
        raise DataError(f"{path}: no such file (run `dvc repro train`)")
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except (ValueError, OSError, zipfile.BadZipFile, KeyError, EOFError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DataError(f"{path}: not a loadable .keras model ({reason}); {RESTORE_HINT}") from None
