"""The yardstick: a configuration's kept seed spread is found by the params that change results,
whatever else params.yaml gains or renames."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.support.paths import REPO
from vae_mnist.common.config import Config
from vae_mnist.common.errors import ConfigError
from vae_mnist.common.quantities import TEST_NEG_ELBO
from vae_mnist.experiments import noise
from vae_mnist.experiments.noise import NOISE_DIR, keep_spread, noise_file, read_spread


@pytest.fixture
def defaults(config: Config) -> dict[str, str]:
    return {k: str(v) for k, v in config.effective().items()}


def test_every_param_is_declared_to_change_results_or_not(defaults: dict[str, str]) -> None:
    named = {noise.RENAMED.get(k, k) for k in defaults}
    assert named == set(noise.RESULTS) | set(noise.NOT_RESULTS)
    assert not set(noise.RESULTS) & set(noise.NOT_RESULTS)
    assert set(noise.RENAMED.values()) <= set(noise.RESULTS)


def test_the_defaults_committed_spread_is_found(defaults: dict[str, str]) -> None:
    spread = read_spread(REPO, defaults)
    assert spread is not None and len(spread.seeds) >= 3
    assert spread.range[TEST_NEG_ELBO] > 0


def test_a_new_param_at_its_default_still_finds_every_kept_spread(
    defaults: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    before = {path.name for path in (REPO / NOISE_DIR).glob("*.json")}
    kept = read_spread(REPO, defaults)
    monkeypatch.setitem(noise.RESULTS, "model.dropout", "0.0")  # a param added later
    assert read_spread(REPO, {**defaults, "model.dropout": "0.0"}) == kept
    assert read_spread(REPO, defaults) == kept  # a run logged before it existed
    assert read_spread(REPO, {**defaults, "model.dropout": "0.1"}) is None  # another config
    for path in (REPO / NOISE_DIR).glob("*.json"):  # and every committed spread keeps its name
        params = json.loads(path.read_text())["params"]
        assert noise_file(REPO, {**params, "model.dropout": "0.0"}).name == path.name
    assert {path.name for path in (REPO / NOISE_DIR).glob("*.json")} == before


def test_renaming_the_experiment_or_the_model_or_the_seed_keeps_the_spread(
    defaults: dict[str, str],
) -> None:
    renamed = {
        **defaults, "mlflow.experiment_name": "vae-team", "mlflow.registered_model_name": "x",
        "seed": "7",
    }  # fmt: skip
    assert read_spread(REPO, renamed) == read_spread(REPO, defaults)


def test_a_param_that_changes_results_is_another_configuration(
    defaults: dict[str, str], tmp_path: Path
) -> None:
    shutil.copytree(REPO / NOISE_DIR, tmp_path / NOISE_DIR)
    wider = {**defaults, "evaluate.iwae_samples": "5000"}
    assert read_spread(tmp_path, wider) is None
    runs = {"1": {"neg_elbo": 140.0}, "2": {"neg_elbo": 141.5}}
    kept = keep_spread(tmp_path, wider, runs, "here")
    assert kept.path != noise_file(tmp_path, defaults)
    assert read_spread(tmp_path, wider) == kept and kept.range == {"neg_elbo": 1.5}


def test_a_param_declared_nowhere_is_one_error_naming_it(defaults: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match=r"model\.dropout in neither RESULTS nor NOT_RESULTS"):
        noise_file(REPO, {**defaults, "model.dropout": "0.1"})
