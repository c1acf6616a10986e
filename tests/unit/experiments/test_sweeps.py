"""Sweeps as data: sweeps.yaml read and checked against params.yaml's rules before anything
runs; a bad sweep is one line naming the sweep and the key, exit 2."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.paths import REPO
from tests.support.workspace import BIN
from vae_mnist.common.errors import ConfigError
from vae_mnist.experiments.sweeps import SWEEPS_FILE, Pruning, load_sweeps

GOOD = """\
fast:
  description: x
  fixed: {train.epochs: 2}
  space:
    train.learning_rate: {low: 0.001, high: 0.01, log: true}
    train.kl_warmup_epochs: {low: 0, high: 1}
    train.batch_size: [32, 64]
  objective: val/neg_elbo
  trials: 3
"""


def test_the_committed_sweeps_load_and_search_what_they_say() -> None:
    sweeps = load_sweeps(REPO / SWEEPS_FILE, REPO / "params.yaml")
    assert sweeps
    for sweep in sweeps.values():
        assert sweep.objective == "val/neg_elbo" and sweep.trials >= 1 and sweep.seeds >= 1


def test_a_sweep_s_ranges_choices_and_defaults(tmp_path: Path) -> None:
    (tmp_path / "sweeps.yaml").write_text(GOOD)
    (sweep,) = load_sweeps(tmp_path / "sweeps.yaml", REPO / "params.yaml").values()
    rate, warmup, batch = sweep.space
    assert (rate.low, rate.high, rate.log, rate.is_int) == (0.001, 0.01, True, False)
    assert (warmup.low, warmup.high, warmup.is_int) == (0, 1, True)
    assert batch.choices == (32, 64)
    assert sweep.fixed == {"train.epochs": 2}
    assert (sweep.seeds, sweep.trials, sweep.minutes) == (1, 3, None)
    assert sweep.pruning == Pruning(after_trials=4, after_epochs=1)  # half of the fixed 2 epochs
    (tmp_path / "sweeps.yaml").write_text(GOOD + "  pruning: false\n")
    assert load_sweeps(tmp_path / "sweeps.yaml", REPO / "params.yaml")["fast"].pruning is None


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("  trials: 3\n", "  trials: 3\n  trails: 4\n", "unknown field 'trails'"),
        ("train.batch_size:", "train.batch_sise:", "unknown key 'train.batch_sise'"),
        ("{low: 0.001, high: 0.01", "{low: 0.01, high: 0.01", "an empty range (low 0.01"),
        ("[32, 64]", "[]", "train.batch_size: an empty list of choices"),
        ("[32, 64]", "[32, 0]", "train.batch_size = 0 is not allowed"),
        ("low: 0.001, high: 0.01,", "low: 0.001, high: 2,",
         "train.learning_rate = 2 is not allowed"),
        ("low: 0.001, high: 0.01, log: true", "low: 0, high: 0.01, log: true",
         "a log range must start above 0"),
        ("val/neg_elbo", "test/neg_elbo", "objective 'test/neg_elbo' is not one of"),
        ("trials: 3", "trials: 0", "trials must be a whole number of at least 1"),
        ("fixed: {train.epochs: 2}", "fixed: {train.batch_size: 32}",
         "train.batch_size is both searched and fixed"),
        ("  trials: 3\n", "  trials: 3\n  pruning: {after_trial: 2}\n",
         "pruning must be false or a mapping of after_epochs, after_trials"),
        ("  trials: 3\n", "  trials: 3\n  pruning: {after_epochs: -1}\n",
         "after_epochs must be a whole number, not -1"),
    ],
)  # fmt: skip
def test_a_bad_sweep_is_one_line_naming_it_and_the_key(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    assert old in GOOD
    (tmp_path / "sweeps.yaml").write_text(GOOD.replace(old, new))
    with pytest.raises(ConfigError) as raised:
        load_sweeps(tmp_path / "sweeps.yaml", REPO / "params.yaml")
    text = str(raised.value)
    assert text.startswith(f"{tmp_path / 'sweeps.yaml'}: sweep 'fast': ")
    assert message in text and "\n" not in text


def test_the_command_line_refuses_a_bad_file_with_exit_2(tmp_path: Path) -> None:
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    (tmp_path / "sweeps.yaml").write_text(GOOD.replace("[32, 64]", "[]"))
    result = subprocess.run(
        [str(BIN / "python"), "-m", "vae_mnist", "sweeps", "list"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: sweeps.yaml: sweep 'fast': train.batch_size: an empty list of choices"
    ]
    assert result.stdout == ""
