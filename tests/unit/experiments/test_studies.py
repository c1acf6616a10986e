"""`make sweep`: an Optuna study whose trials are DVC experiments of the real pipeline (shrunk),
on the default sqlite study and on the team stack's PostgreSQL; pruning, interruption and
resumption as a user meets them."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import optuna
import pytest

from tests.support.paths import REPO
from tests.support.studies import SWEEPS
from tests.support.workspace import BIN
from vae_mnist.common.errors import ConfigError
from vae_mnist.experiments.studies import as_recipe, experiment_names, storage_url, suggest
from vae_mnist.experiments.sweeps import Dimension, load_sweeps
from vae_mnist_tools.stack.state import Stack


def _open_study_storage(url: str, start: Any, results: Any) -> None:
    from vae_mnist.training.trials import open_storage

    start.wait()
    try:
        open_storage(url)
        results.put("ok")
    except Exception as error:  # whatever it is, reported to the test
        results.put(f"{type(error).__name__}: {error}"[:300])


def test_a_searched_float_is_rounded_to_what_a_recipe_shows_and_ints_and_choices_pass() -> None:
    trial = optuna.trial.FixedTrial({"a": 0.001975103837115054, "b": 3, "c": "[512, 256]"})
    assert suggest(trial, Dimension("a", 0.0005, 0.005, log=True)) == 0.00198
    assert suggest(trial, Dimension("b", 0, 4)) == 3
    assert suggest(trial, Dimension("c", choices=([512, 256], [64]))) == [512, 256]


def test_experiment_names_and_the_best_trial_as_a_recipe_that_loads(tmp_path: Path) -> None:
    (tmp_path / "sweeps.yaml").write_text(SWEEPS.replace("trials: 2", "trials: 2\n  seeds: 2"))
    loaded = load_sweeps(tmp_path / "sweeps.yaml", REPO / "params.yaml")
    assert experiment_names(loaded["tiny"], 7, [42]) == ["tiny-7"]
    assert experiment_names(loaded["longer"], 7, [42, 43]) == ["longer-7-s42", "longer-7-s43"]
    trial = optuna.trial.create_trial(
        value=140.5,
        params={"train.learning_rate": 0.002},
        distributions={"train.learning_rate": optuna.distributions.FloatDistribution(1e-6, 1)},
        user_attrs={"params": {"train.epochs": 2, "train.learning_rate": 0.002},
                    "values": [140.0, 141.0]},
    )  # fmt: skip
    text = as_recipe(loaded["longer"], trial)
    (tmp_path / "recipes.yaml").write_text(text)
    from vae_mnist.experiments.recipes import load_recipes

    (recipe,) = load_recipes(tmp_path / "recipes.yaml", REPO / "params.yaml").values()
    assert recipe.name == "longer-best"
    assert recipe.overrides == {"train.epochs": 2, "train.learning_rate": 0.002}
    assert "val/neg_elbo 140.50 (mean of 2 seeds)" in recipe.description


def test_the_study_is_beside_a_sqlite_store_and_a_server_needs_the_team_database(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("VAE_MNIST_SWEEP_STORAGE", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}")
    assert storage_url() == f"sqlite:///{tmp_path / 'store' / 'optuna.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://user:secret@127.0.0.1:5443")
    with pytest.raises(ConfigError) as raised:
        storage_url()
    assert "export VAE_MNIST_SWEEP_STORAGE" in str(raised.value)
    assert "secret" not in str(raised.value)
    monkeypatch.setenv("VAE_MNIST_SWEEP_STORAGE", "postgresql+psycopg://sweeps:x@127.0.0.1/s")
    assert storage_url() == "postgresql+psycopg://sweeps:x@127.0.0.1/s"


def test_an_unknown_sweep_is_one_line_and_exit_2() -> None:
    result = subprocess.run(
        [str(BIN / "python"), "-m", "vae_mnist", "sweeps", "run", "nope"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: no sweep 'nope' in sweeps.yaml (there are: latent2-12ep, latent20-10ep, quick)"
    ]


def test_the_committed_example_sweep_is_small() -> None:
    """`make sweep S=quick` is the README's example: a few minutes on 2 cores."""
    quick = load_sweeps(REPO / "sweeps.yaml", REPO / "params.yaml")["quick"]
    assert quick.fixed["train.epochs"] <= 3 and quick.trials <= 6


def test_workers_opening_a_new_study_database_at_once_all_get_it(tmp_path: Path) -> None:
    """Each creates Optuna's schema in a new database; the later ones must find it made (two
    sweep workers on a fresh PostgreSQL broke on it: "duplicate key ... studydirection")."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    for attempt in range(2):
        url = f"sqlite:///{tmp_path / f'optuna-{attempt}.db'}"
        start, results = context.Barrier(6), context.Queue()
        workers = [context.Process(target=_open_study_storage, args=(url, start, results))
                   for _ in range(6)]  # fmt: skip
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=120)
        assert [results.get(timeout=10) for _ in workers] == ["ok"] * 6


def test_logging_in_to_a_stack_in_process_leaves_none_of_its_variables_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every variable a stack's client gets (the sweeps' database among them) is set back after
    `access.logged_in`: one left behind sent a later test's sqlite sweep to another stack."""
    from vae_mnist_tools.stack import access, credentials

    found = credentials.files(tmp_path)
    found.folder.mkdir()
    credentials.write_private(found.password("admin"), "pw\n")
    credentials.keep_sweep_storage(found, "postgresql+psycopg://sweeps:x@127.0.0.1:1/sweeps")
    stack = Stack(tmp_path, "https://127.0.0.1:1", "", "", "", "", "", "")
    variables = stack.client_env()
    assert "VAE_MNIST_SWEEP_STORAGE" in variables
    for name in variables:
        monkeypatch.delenv(name, raising=False)
    with access.logged_in(stack):
        assert {name: os.environ[name] for name in variables} == variables
    assert not set(variables) & set(os.environ)
