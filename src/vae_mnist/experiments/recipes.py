"""Recipes: named sets of params.yaml overrides, each a row of the results (docs/results.md).

Data, not code: recipes.yaml lists them; `make recipe R=<name>` runs one as the DVC experiment
`<name>` (`dvc exp run -n <name> -S key=value ...`), so that `dvc exp show`, the MLflow runs
(`train@<name>`) and the registered version it makes all carry its name. Every recipe is
validated against params.yaml before anything runs.

A recipe is HEAD's params plus its own: `dvc exp run` leaves each experiment's params in the
workspace, so a second recipe would otherwise train on top of the first one's. Every key where
params.yaml differs from its committed version is set back to HEAD's value with `-S` as well
(and named), so the experiment is the same whatever ran before it.
"""

from __future__ import annotations

import os
import shlex
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from vae_mnist.common.config import (
    PARAMS_FILE,
    load_config,
    project_root,
    read_named,
    with_overrides,
)
from vae_mnist.common.errors import ConfigError, VaeMnistError
from vae_mnist.common.machine import fingerprint
from vae_mnist.common.pipeline import EVALUATE, computed
from vae_mnist.common.quantities import TEST, TEST_NEG_ELBO
from vae_mnist.common.tensorflow_env import quiet_tensorflow
from vae_mnist.experiments.noise import keep_spread

RECIPES_FILE = Path("recipes.yaml")


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    overrides: Mapping[str, Any]  # dotted params.yaml keys -> values

    def command(self, overrides: Mapping[str, Any] | None = None) -> list[str]:
        """The DVC experiment that runs it (with `overrides`: head_overrides' for this recipe)."""
        return experiment(self.name, self.overrides if overrides is None else overrides)


def experiment(name: str, overrides: Mapping[str, Any], trained: bool = False) -> list[str]:
    """`dvc exp run -n <name> -S key=value ...`; `trained`: in a copy of the workspace (whose
    params.yaml stays as it is), every stage after the download forced, so that it trains and
    logs its runs even where DVC's run cache holds the same experiment."""
    command = ["dvc", "exp", "run", "-n", name]
    if trained:
        command[3:3] = ["--temp", "-f", "-s"]
    for key, value in overrides.items():
        command += ["-S", f"{key}={yaml_value(value)}"]
    return [*command, *(computed() if trained else ())]


def head_overrides(
    recipe: Mapping[str, Any], workspace: Mapping[str, Any], head: Mapping[str, Any]
) -> dict[str, Any]:
    """The `-S` values that make an experiment HEAD's params plus `recipe`, whatever params.yaml
    holds now: every key outside the recipe whose workspace value is not HEAD's, set back, then
    the recipe's own."""
    reset = {k: v for k, v in head.items() if k not in recipe and workspace.get(k) != v}
    return {**reset, **recipe}


def committed_params(params: Path = PARAMS_FILE) -> dict[str, Any] | None:
    """params.yaml as committed at HEAD, as dotted keys; None outside a git checkout (or where
    params.yaml is not committed)."""
    try:
        shown = subprocess.run(
            ["git", "show", f"HEAD:./{params.name}"], cwd=params.resolve().parent,
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    if shown.returncode != 0:
        return None
    with tempfile.TemporaryDirectory() as folder:
        committed = Path(folder) / params.name
        committed.write_text(shown.stdout, encoding="utf-8")
        return load_config(committed).flat()


def yaml_value(value: Any) -> str:
    """A value as DVC's `-S` parses it (YAML): `0.002`, `cosine`, `[512, 256, 128]`."""
    return yaml.safe_dump(value, default_flow_style=True).removesuffix("\n...\n").strip()


def load_recipes(path: Path = RECIPES_FILE, params: Path = PARAMS_FILE) -> dict[str, Recipe]:
    """Every recipe, each checked against params.yaml as DVC would apply it."""
    raw = read_named(path, "recipe")
    recipes = {}
    for name, body in raw.items():
        where = f"{path}: recipe {name!r}"
        if not isinstance(body, dict) or set(body) != {"description", "set"}:
            raise ConfigError(f"{where}: must hold exactly `description` and `set`")
        if not isinstance(body["set"], dict) or not body["set"]:
            raise ConfigError(f"{where}: `set` must map params.yaml keys to values")
        with_overrides(body["set"], where, params)
        recipes[str(name)] = Recipe(str(name), str(body["description"]), dict(body["set"]))
    return recipes


def listing(recipes: Mapping[str, Recipe]) -> list[str]:
    """Each recipe, its description and the command that runs it."""
    return [f"{r.name}: {r.description}\n  {shlex.join(r.command())}" for r in recipes.values()]


def run_recipe(name: str, seeds: int = 1, run: bool = True) -> None:
    """Print the recipe's command(s) and, with `run`, run them: on HEAD's params plus its own,
    as one experiment, or one a seed (`over_seeds`)."""
    recipes = load_recipes()
    if name not in recipes:
        raise ConfigError(f"no recipe {name!r} in {RECIPES_FILE} (there are: {', '.join(recipes)})")
    if seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, not {seeds}")
    recipe = recipes[name]
    overrides = dict(recipe.overrides)
    if (head := committed_params()) is not None:
        overrides = head_overrides(recipe.overrides, load_config(PARAMS_FILE).flat(), head)
        if reset := [key for key in overrides if key not in recipe.overrides]:
            print(
                f"params.yaml differs from HEAD in {', '.join(reset)} (left by an earlier "
                "experiment?): the recipe runs on HEAD's values of those",
                flush=True,
            )
    dvc = os.path.join(os.path.dirname(sys.executable), "dvc")  # the environment's own
    if seeds > 1:
        over_seeds(recipe, overrides, head, seeds, run=run, dvc=dvc)
        return
    command = recipe.command(overrides)
    print(shlex.join(command), flush=True)
    if run:
        os.execv(dvc, [dvc, *command[1:]])


def over_seeds(
    recipe: Recipe, overrides: Mapping[str, Any], head: Mapping[str, Any] | None, seeds: int,
    run: bool, dvc: str,
) -> None:  # fmt: skip
    """The recipe as one experiment a seed, `<name>-s<seed>`, each in a copy of the workspace;
    then each one's test -ELBO and their mean and standard deviation (a result that holds on
    any seed, not on a lucky one)."""
    settings = {**(head or load_config(PARAMS_FILE).flat()), **overrides}
    first = settings["seed"]
    runs = {f"{recipe.name}-s{seed}": seed for seed in range(first, first + seeds)}
    for name, seed in runs.items():
        command = experiment(name, {**overrides, "seed": seed}, trained=True)
        print(shlex.join(command), flush=True)
        if run and subprocess.run([dvc, *command[1:]]).returncode != 0:
            raise VaeMnistError(f"the experiment {name} failed (its output is above)")
    if not run:
        return
    # MLflow takes seconds to load: `vae-mnist recipes list` and a dry run stay quick
    from vae_mnist.tracking.sweeps import experiment_metrics

    tracked = settings["mlflow.experiment_name"]
    found = {name: experiment_metrics(tracked, name, EVALUATE) or {} for name in runs}
    if missing := [name for name, metrics in found.items() if TEST_NEG_ELBO not in metrics]:
        raise VaeMnistError(f"no finished evaluation of {', '.join(missing)} in MLflow")
    values = {name: metrics[TEST_NEG_ELBO] for name, metrics in found.items()}
    print(f"{recipe.name}: {TEST_NEG_ELBO} over {seeds} seeds ({first}-{first + seeds - 1}): "
          f"{seed_summary(list(values.values()))}")  # fmt: skip
    for name, value in values.items():
        print(f"  {name}: {value:.2f}")
    tests = {str(runs[name]): {k: v for k, v in metrics.items() if k.startswith(f"{TEST}/")}
             for name, metrics in found.items()}  # fmt: skip
    root = project_root()
    quiet_tensorflow()  # the stages' settings, which their machine fingerprint records too
    config = with_overrides(overrides, f"recipe {recipe.name}", root / PARAMS_FILE).effective()
    kept = keep_spread(root, config, tests, fingerprint(root)["id"])
    print(f"its seed-to-seed spread, the yardstick of `make report`, is kept in "
          f"{kept.path.relative_to(root)}: commit it to share it")  # fmt: skip


def seed_summary(values: list[float]) -> str:
    """`137.41 ± 0.38 (sd; 137.02 to 137.78)`: the mean, the standard deviation, the range."""
    mean, sd = statistics.fmean(values), statistics.stdev(values)
    return f"{mean:.2f} ± {sd:.2f} (sd; {min(values):.2f} to {max(values):.2f})"
