"""Recipes: each one a valid set of params.yaml overrides, run as a named DVC experiment, and a
row of the README's results table; a broken recipe is one line naming it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from tests.support.paths import REPO
from tests.support.recipes import values
from vae_mnist.common.config import load_config
from vae_mnist.common.errors import ConfigError
from vae_mnist.experiments.recipes import RECIPES_FILE, head_overrides, load_recipes, seed_summary
from vae_mnist.experiments.sweeps import load_sweeps

keys = st.sampled_from([f"section.key{i}" for i in range(6)])


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


def test_the_seed_summary_is_mean_sd_and_range() -> None:
    assert seed_summary([137.0, 138.0, 136.0]) == "137.00 ± 1.00 (sd; 136.00 to 138.00)"
