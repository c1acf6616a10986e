"""Recipes: each one a valid set of params.yaml overrides, run as a named DVC experiment, and a
row of the README's results table; a broken recipe is one line naming it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import mlflow
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from vae_mnist.common.config import load_config
from vae_mnist.common.errors import ConfigError
from vae_mnist.common.quantities import TEST_NEG_ELBO
from vae_mnist.experiments.noise import read_spread
from vae_mnist.experiments.recipes import RECIPES_FILE, head_overrides, load_recipes, seed_summary
from vae_mnist.experiments.sweeps import load_sweeps
from vae_mnist.tracking.lineage import NOT_PARAMS_YAML

from .conftest import REPO
from .workspace import BIN, Repo


def test_every_recipe_is_valid_named_and_in_the_readme_s_table() -> None:
    recipes = load_recipes(REPO / RECIPES_FILE, REPO / "params.yaml")
    readme = (REPO / "README.md").read_text()
    assert recipes
    for name, recipe in recipes.items():
        command = recipe.command()
        assert command[:5] == ["dvc", "exp", "run", "-n", name]
        sets = dict(arg.split("=", 1) for arg in command[6::2])
        assert command[5::2] == ["-S"] * len(recipe.overrides)
        # DVC reads each -S value as YAML: the same value comes back
        assert {k: yaml.safe_load(v) for k, v in sets.items()} == dict(recipe.overrides)
        assert f"make recipe R={name}" in readme, f"{name} has no row in the README"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("fast:\n  description: x\n  set: {train.epoch: 3}\n", "unknown key 'train.epoch'"),
        ("fast:\n  description: x\n  set: {train.epochs: 0}\n", "train.epochs = 0 is not allowed"),
        ("fast:\n  description: x\n  set: {seed.x: 1}\n", "seed.x is not a key of"),
        ("fast:\n  set: {train.epochs: 3}\n", "must hold exactly `description` and `set`"),
    ],
)
def test_a_broken_recipe_is_one_line_that_names_it(tmp_path: Path, body: str, message) -> None:
    (tmp_path / "recipes.yaml").write_text(body)
    with pytest.raises(ConfigError) as raised:
        load_recipes(tmp_path / "recipes.yaml", REPO / "params.yaml")
    assert str(raised.value).startswith(f"{tmp_path / 'recipes.yaml'}: recipe 'fast': ")
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_recipes_and_sweeps_read_yaml_1_2_as_dvc_reads_params(tmp_path: Path) -> None:
    """`1e-3` is a float in YAML 1.2 (DVC's params.yaml) and a string in YAML 1.1 (PyYAML), which
    the strict float check would refuse: every file of the project is read the one way."""
    (tmp_path / "recipes.yaml").write_text(
        "fast:\n  description: x\n  set: {train.learning_rate: 1e-3, data.binarize: dynamic}\n"
    )
    (recipe,) = load_recipes(tmp_path / "recipes.yaml", REPO / "params.yaml").values()
    assert recipe.overrides["train.learning_rate"] == 0.001
    assert isinstance(recipe.overrides["train.learning_rate"], float)
    params = (
        (REPO / "params.yaml").read_text().replace("learning_rate: 0.001", "learning_rate: 1e-3")
    )
    (tmp_path / "params.yaml").write_text(params)
    assert load_config(tmp_path / "params.yaml").train.learning_rate == 0.001
    (tmp_path / "sweeps.yaml").write_text(
        "s:\n  description: x\n  fixed: {train.learning_rate: 1e-3}\n"
        "  space: {train.batch_size: [16, 32]}\n  objective: val/neg_elbo\n  trials: 2\n"
    )
    (sweep,) = load_sweeps(tmp_path / "sweeps.yaml", REPO / "params.yaml").values()
    assert sweep.fixed["train.learning_rate"] == 0.001
    assert yaml.safe_load("x: 1e-3") == {"x": "1e-3"}  # what a YAML 1.1 reader would have made


def test_a_recipe_sets_back_what_an_earlier_experiment_left_in_the_workspace() -> None:
    head = {"train.learning_rate": 0.001, "train.batch_size": 128, "model.latent_dim": 2}
    left = {"train.learning_rate": 0.002, "train.batch_size": 32, "model.latent_dim": 2}
    overrides = head_overrides({"model.latent_dim": 20}, left, head)
    assert overrides == {"train.learning_rate": 0.001, "train.batch_size": 128,
                         "model.latent_dim": 20}  # fmt: skip
    assert head_overrides({"model.latent_dim": 20}, head, head) == {"model.latent_dim": 20}


keys = st.sampled_from([f"section.key{i}" for i in range(6)])
values = st.integers(0, 3)


@given(
    st.dictionaries(keys, values),
    st.dictionaries(keys, values),
    st.dictionaries(keys, values, min_size=6),
)
def test_whatever_the_workspace_holds_the_experiment_is_head_plus_the_recipe(
    recipe: dict[str, int], workspace: dict[str, int], head: dict[str, int]
) -> None:
    applied = {**workspace, **head_overrides(recipe, workspace, head)}  # what `-S` leaves
    assert {k: applied[k] for k in head} == {**head, **recipe}


TWO_RECIPES = """\
faster:
  description: a higher learning rate
  set: {train.learning_rate: 0.002}
wider:
  description: a 3-d latent
  set: {model.latent_dim: 3}
"""


@pytest.mark.e2e
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


def test_the_seed_summary_is_mean_sd_and_range() -> None:
    assert seed_summary([137.0, 138.0, 136.0]) == "137.00 ± 1.00 (sd; 136.00 to 138.00)"


@pytest.mark.e2e
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
