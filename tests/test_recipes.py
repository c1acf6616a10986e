"""Recipes: each one a valid set of params.yaml overrides, run as a named DVC experiment, and a
row of the README's results table; a broken recipe is one line naming it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from vae_mnist.errors import ConfigError
from vae_mnist.recipes import RECIPES_FILE, load_recipes

from .conftest import REPO


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
