"""dvc.yaml declares what each stage really uses, so DVC reruns exactly what a change touches."""

from __future__ import annotations

import ast
import importlib

import pytest
import yaml

from tests.support.paths import REPO
from vae_mnist.common.config import Config
from vae_mnist.common.pipeline import DOWNLOAD, EVALUATE, PREPROCESS, TRAIN, computed

SRC = REPO / "src"


STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


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
    """A key at a time, so that only what a change touches reruns; the one section listed whole
    is `model`, all of which the train stage reads (a new kind's section with it)."""
    leaves = set(config.flat())
    for key in STAGES[stage].get("params", []):
        whole = key == "model" and stage == TRAIN
        assert isinstance(key, str) and (key in leaves or whole), f"{key} is not a single param"


def test_the_train_stage_logs_the_model_section_of_its_kind(config: Config) -> None:
    logged = config.params(STAGES[TRAIN]["params"])
    assert {k for k in logged if k.startswith("model.")} == {
        "model.kind", "model.latent_dim", "model.activation", "model.mlp.hidden_units",
    }  # fmt: skip


def test_mlflow_names_never_rerun_a_stage() -> None:
    for stage in STAGES.values():
        assert not [k for k in stage.get("params", []) if k.startswith("mlflow.")]


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_a_stage_has_one_name_its_module_function_and_script_s(stage: str) -> None:
    module = importlib.import_module(f"vae_mnist.stages.{stage}")
    assert callable(getattr(module, stage))
    assert getattr(module, "STAGE", stage) == stage  # own_name(__name__), where it logs a run
    assert f"python pipeline/{stage}.py " in STAGES[stage]["cmd"]


def test_the_stage_names_code_runs_them_by_are_dvc_yaml_s() -> None:
    named = [DOWNLOAD, PREPROCESS, TRAIN, EVALUATE]  # in this order; other stages may join
    assert [stage for stage in STAGES if stage in named] == named
    assert list(computed(REPO)) == list(STAGES)[1:]  # every stage after the download
