"""The history: DVCLive's files as the train stage writes them, read back by evaluate."""

from __future__ import annotations

from pathlib import Path

from tests.support.data import write_history
from tests.support.paths import REPO
from vae_mnist.common import history
from vae_mnist.common.quantities import EPOCH_NAMES, HISTORY_COLUMNS
from vae_mnist.training.callbacks import EpochLog

ROWS = [(1, 200.5, 190, 10.5, 199, 189, 10, 0.001, 0.5), (2, 180, 172, 8, 181, 173, 8, 1e-4, 1)]


def test_what_the_callback_writes_is_what_evaluate_reads(tmp_path: Path) -> None:
    back = history.read(write_history(tmp_path / "training", ROWS))
    assert back == [dict(zip(HISTORY_COLUMNS, row, strict=True)) for row in ROWS]


def test_epoch_n_is_step_n_in_dvclives_own_files_without_timestamps(tmp_path: Path) -> None:
    folder = write_history(tmp_path / "training", ROWS)
    val = history.metric_file(folder, "val/neg_elbo")
    assert val == folder / "plots" / "metrics" / "val" / "neg_elbo.tsv"
    assert val.read_text().splitlines() == ["step\tneg_elbo", "1\t199.0", "2\t181.0"]
    for name in EPOCH_NAMES.values():
        assert history.metric_file(folder, name).is_file(), name


def test_the_same_logs_write_the_same_bytes_and_leave_dvc_yaml_alone(tmp_path: Path) -> None:
    before = (REPO / "dvc.yaml").read_bytes()
    folders = [write_history(tmp_path / side, ROWS) for side in ("a", "b")]
    files = [sorted(p.relative_to(f) for p in f.rglob("*") if p.is_file()) for f in folders]
    assert files[0] == files[1] and not [p for p in files[0] if p.name == "dvc.yaml"]
    for relative in files[0]:
        assert (folders[0] / relative).read_bytes() == (folders[1] / relative).read_bytes()
    assert (REPO / "dvc.yaml").read_bytes() == before


def test_quantities_not_logged_are_left_out(tmp_path: Path) -> None:
    folder = tmp_path / "training"
    log = EpochLog(folder)
    log.on_epoch_end(0, {"loss": 3.0, "val_loss": 4.0, "not_a_quantity": 1.0})
    assert history.read(folder) == [{"epoch": 1.0, "train/loss": 3.0, "val/neg_elbo": 4.0}]
