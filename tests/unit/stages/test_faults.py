"""Faults injected under one stage at a time, on tiny synthetic data and a real sqlite store: a
signal, a locked or unwritable store, a full disk, a damaged out. Each ends in one line on stderr
(or, for a short lock, in success) and leaves no half-written out and no MLflow run RUNNING.

The same faults under a real `dvc repro`, on real MNIST: tests/e2e/test_interrupts.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.support.configs import override
from tests.support.faults import (
    runs_of,
)
from vae_mnist.common.config import Config
from vae_mnist.common.errors import RESTORE_HINT, DataError, Terminated
from vae_mnist.data.arrays import STATS_FILE, load_split, split_files
from vae_mnist.model.files import load_vae, save_vae
from vae_mnist.model.vae import build_vae
from vae_mnist.tracking.runs import stage_run


def flip_byte(path: Path, offset: int) -> None:
    content = bytearray(path.read_bytes())
    content[offset] ^= 0xFF
    path.write_bytes(bytes(content))


@pytest.mark.parametrize("interruption", [KeyboardInterrupt, Terminated])
def test_an_interrupted_stage_run_ends_killed_and_a_failed_one_failed(
    mlflow_store: str, interruption: type[BaseException]
) -> None:
    with pytest.raises(interruption), stage_run("interrupted", "faults"):
        raise interruption
    with pytest.raises(ValueError), stage_run("failed", "faults"):
        raise ValueError
    statuses = {
        r.info.run_name.split("@")[0]: r.info.status for r in runs_of(mlflow_store, "faults")
    }
    assert statuses == {"interrupted": "KILLED", "failed": "FAILED"}


@pytest.mark.parametrize("which", [0, 1])
def test_a_changed_byte_in_an_array_is_refused_naming_its_file(processed: Path, which: int) -> None:
    path = split_files(processed, "train")[which]
    flip_byte(path, path.stat().st_size - 1)  # the data, not the header: it would still load
    with pytest.raises(DataError) as raised:
        load_split(processed, "train")
    assert str(raised.value).startswith(f"{path}: content changed since preprocess wrote it")
    assert str(raised.value).endswith(RESTORE_HINT)
    load_split(processed, "val")  # the other splits still load


def test_a_truncated_or_missing_array_or_stats_is_refused_naming_it(processed: Path) -> None:
    images = split_files(processed, "val")[0]
    images.write_bytes(images.read_bytes()[:1000])
    with pytest.raises(DataError, match=f"^{images}: content changed"):
        load_split(processed, "val")
    images.unlink()
    with pytest.raises(DataError, match=f"^{images}: no such file"):
        load_split(processed, "val")
    (processed / STATS_FILE).unlink()
    with pytest.raises(DataError, match=f"^{processed / STATS_FILE}: no such file"):
        load_split(processed, "test")


def test_a_damaged_model_file_is_refused_naming_it(config: Config, tmp_path: Path) -> None:
    small = override(config, {"model.mlp.hidden_units": [8]})
    path = tmp_path / "vae.keras"
    save_vae(build_vae(small.model, False, seed=0), path)
    good = path.read_bytes()
    flip_byte(path, len(good) // 2)  # inside the weights: the zip's CRC-32 catches it
    with pytest.raises(DataError, match=rf"^{path}: not a loadable \.keras model \(Bad CRC-32"):
        load_vae(path)
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError, match=f"^{path}: not a loadable .keras model .*{RESTORE_HINT}"):
        load_vae(path)
    path.unlink()
    with pytest.raises(DataError, match=f"^{path}: no such file"):
        load_vae(path)
    path.write_bytes(good)
    x = np.zeros((1, 28, 28), np.float32)
    assert load_vae(path)(x).shape == (1, 28, 28, 1)
