"""dvc.yaml declares what each stage really uses, so DVC reruns exactly what a change touches."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from vae_mnist.config import Config

from .conftest import REPO

SRC = REPO / "src"
STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def module_file(name: str) -> Path | None:
    """The file of a vae_mnist module, or None for packages and names that are not modules."""
    path = SRC.joinpath(*name.split("."))
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else None


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in names if name.split(".")[0] == "vae_mnist"}


def import_closure(script: Path) -> set[str]:
    """Every vae_mnist module file that running `script` loads, as repo-relative paths."""
    seen: set[Path] = set()
    todo = [script]
    while todo:
        for name in imported_modules(todo.pop()):
            file = module_file(name)
            if file and file not in seen:
                seen.add(file)
                todo.append(file)
    return {str(file.relative_to(REPO)) for file in seen}


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_depends_on_its_script_and_exactly_the_modules_it_imports(stage: str) -> None:
    script = REPO / "pipeline" / f"{stage}.py"
    assert script.is_file(), "a stage's script is named after the stage"
    deps = set(STAGES[stage]["deps"])
    assert f"pipeline/{stage}.py" in deps
    declared_code = {d for d in deps if d.startswith("src/")}
    assert declared_code == import_closure(script)


def test_packages_hold_no_code() -> None:
    # __init__.py files are left out of deps, which is only right while they hold nothing.
    for init in SRC.rglob("__init__.py"):
        body = ast.parse(init.read_text()).body
        assert all(
            isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) for node in body
        ), init


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_each_stage_says_what_it_does(stage: str) -> None:
    # `dvc stage list` shows it; one line, the first words naming the work
    desc = STAGES[stage].get("desc", "")
    assert desc and "\n" not in desc.strip() and len(desc) <= 100, desc


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_runs_the_code_in_its_own_tree(stage: str) -> None:
    # not the editable install's, which is the workspace's even for a queued experiment's copy
    assert STAGES[stage]["cmd"].startswith(f"PYTHONPATH=src python pipeline/{stage}.py ")


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_params_are_listed_one_key_at_a_time(stage: str, config: Config) -> None:
    leaves = set(config.flat())
    for key in STAGES[stage].get("params", []):
        assert isinstance(key, str) and key in leaves, f"{key} is not a single param"


def test_mlflow_names_never_rerun_a_stage() -> None:
    for stage in STAGES.values():
        assert not [k for k in stage.get("params", []) if k.startswith("mlflow.")]
