"""Recipes run for real as DVC experiments on the shrunk pipeline: on HEAD's params whatever the
workspace holds, one after another, and over seeds with their spread kept. Reading recipes:
tests/unit/experiments/test_recipes.py."""

from __future__ import annotations

import subprocess

import mlflow
import pytest

from tests.support.workspace import BIN, Repo
from vae_mnist.common.config import load_config
from vae_mnist.common.quantities import TEST_NEG_ELBO
from vae_mnist.experiments.noise import read_spread
from vae_mnist.experiments.recipes import seed_summary
from vae_mnist.tracking.lineage import NOT_PARAMS_YAML

TWO_RECIPES = """\
faster:
  description: a higher learning rate
  set: {train.learning_rate: 0.002}
wider:
  description: a 3-d latent
  set: {model.latent_dim: 3}
"""


def test_two_recipes_in_a_row_each_train_on_head_plus_their_own(pipeline: Repo) -> None:
    """`make recipe R=faster` then `make recipe R=wider`: DVC leaves faster's learning rate in
    params.yaml, and wider must not train with it (its MLflow run's params prove it)."""
    (pipeline.root / "recipes.yaml").write_text(TWO_RECIPES)
    committed = load_config(pipeline.root / "params.yaml").flat()

    def run(name: str) -> subprocess.CompletedProcess[str]:
        return pipeline.run(str(BIN / "python"), "-m", "vae_mnist", "recipes", "run", name)

    first = run("faster")
    assert "differs from HEAD" not in first.stdout
    second = run("wider")
    assert second.stdout.splitlines()[0] == (
        "params.yaml differs from HEAD in train.learning_rate (left by an earlier experiment?): "
        "the recipe runs on HEAD's values of those"
    )
    client = mlflow.MlflowClient(f"sqlite:///{pipeline.root / 'mlflow.db'}")
    logged = {}
    for name in ("faster", "wider"):
        (train,) = client.search_runs(
            [client.get_experiment_by_name("vae-mnist").experiment_id],
            f"tags.stage = 'train' and tags.`dvc.exp_name` = '{name}'",
        )
        logged[name] = train.data.params
    expected = {key: str(value) for key, value in committed.items()}
    assert {k: logged["faster"][k] for k in expected} == {
        **expected,
        "train.learning_rate": "0.002",
    }
    assert {k: logged["wider"][k] for k in expected} == {**expected, "model.latent_dim": "3"}


def test_a_recipe_over_seeds_trains_each_seed_and_reports_their_mean(pipeline: Repo) -> None:
    """`make recipe R=faster SEEDS=2`: one experiment a seed, each trained (its own MLflow runs,
    the split of its seed), and the mean of their test -ELBO printed."""
    (pipeline.root / "recipes.yaml").write_text(TWO_RECIPES)
    pipeline.commit("two recipes")
    params = (pipeline.root / "params.yaml").read_text()
    result = pipeline.run(str(BIN / "python"), "-m", "vae_mnist", "recipes", "run", "faster",
                          "--seeds", "2")  # fmt: skip
    client = mlflow.MlflowClient(f"sqlite:///{pipeline.root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("vae-mnist").experiment_id
    values = []
    for name, seed in (("faster-s42", "42"), ("faster-s43", "43")):
        (evaluated,) = client.search_runs(
            [experiment], f"tags.stage = 'evaluate' and tags.`dvc.exp_name` = '{name}'"
        )
        (trained,) = client.search_runs(
            [experiment], f"tags.stage = 'train' and tags.`dvc.exp_name` = '{name}'"
        )
        assert trained.data.params["seed"] == seed
        assert trained.data.params["train.learning_rate"] == "0.002"
        values.append(evaluated.data.metrics["test/neg_elbo"])
        assert f"  {name}: {values[-1]:.2f}" in result.stdout.splitlines()
    assert values[0] != values[1]  # two seeds, two models
    assert f"faster: test/neg_elbo over 2 seeds (42-43): {seed_summary(values)}" in result.stdout
    listed = pipeline.dvc("exp", "list", "--name-only").stdout.split()
    assert sorted(listed) == ["faster-s42", "faster-s43"]
    assert (pipeline.root / "params.yaml").read_text() == params  # ran in copies of it
    # the spread of the two seeds is kept where `make reproduce` and `make report` look for
    # this configuration: the digest of the params the training runs logged
    logged = {k: v for k, v in trained.data.params.items() if not k.startswith(NOT_PARAMS_YAML)}
    kept = read_spread(pipeline.root, logged)
    assert kept is not None and kept.seeds == ["42", "43"]
    assert kept.range[TEST_NEG_ELBO] == pytest.approx(abs(values[0] - values[1]))
    assert str(kept.path.relative_to(pipeline.root)) in result.stdout
