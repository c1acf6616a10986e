"""The deps tool: each stage's code deps in dvc.yaml are its script, its stage module and the
library packages it computes with, read off the imports, so that a new module needs no edit of
dvc.yaml, a new package one import, and MLflow code (tracking) reruns nothing."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

from tests.support.paths import REPO
from tests.support.workspace import STAGES
from vae_mnist.cli import main
from vae_mnist.common.pipeline import PIPELINE_FILE
from vae_mnist_tools.deps import code_deps, covers, derived

SRC = "src/vae_mnist"


def stages_listing(path: str) -> set[str]:
    """The stages whose deps hold the file or folder `path`."""
    return {s for s in STAGES if any(covers(dep, path) for dep in code_deps(REPO, s))}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The stages' scripts, the package and dvc.yaml: what the tool reads."""
    for folder in ("pipeline", "src"):
        shutil.copytree(
            REPO / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(REPO / PIPELINE_FILE, tmp_path)
    return tmp_path


def deps_command(*args: str) -> int:
    try:
        main(["deps", *args])
    except SystemExit as done:
        return int(done.code or 0)
    return 0


def test_dvc_yaml_is_what_the_tool_writes() -> None:
    text, changes = derived(REPO)
    assert changes == {}
    assert text == (REPO / PIPELINE_FILE).read_text()


def test_each_stage_lists_its_script_its_module_and_the_packages_it_computes_with() -> None:
    assert code_deps(REPO, "download") == [
        "pipeline/download.py", f"{SRC}/common", f"{SRC}/data", f"{SRC}/stages/download.py",
    ]  # fmt: skip
    assert code_deps(REPO, "train") == [
        "pipeline/train.py", f"{SRC}/common", f"{SRC}/data", f"{SRC}/model",
        f"{SRC}/stages/train.py", f"{SRC}/training",
    ]  # fmt: skip
    assert code_deps(REPO, "evaluate") == [
        "pipeline/evaluate.py", f"{SRC}/common", f"{SRC}/data", f"{SRC}/evaluation",
        f"{SRC}/model", f"{SRC}/stages/evaluate.py",
    ]  # fmt: skip


def test_what_reruns_on_an_edit_of_each_package() -> None:
    # docs/development.md's table says the same
    assert stages_listing(f"{SRC}/common/config.py") == set(STAGES)
    assert stages_listing(f"{SRC}/data/idx.py") == set(STAGES)
    assert stages_listing(f"{SRC}/model/vae.py") == {"train", "evaluate"}
    assert stages_listing(f"{SRC}/training/fit.py") == {"train"}
    assert stages_listing(f"{SRC}/evaluation/metrics.py") == {"evaluate"}
    assert stages_listing(f"{SRC}/stages/train.py") == {"train"}
    # what writes no out, or that no stage runs: MLflow's package, the apps, the experiments,
    # the CLI, the tooling
    for other in ["tracking/names.py", "tracking/registry.py", "apps/explorer/app.py",
                  "experiments/report/sides.py", "cli.py"]:  # fmt: skip
        assert stages_listing(f"{SRC}/{other}") == set(), other
    assert stages_listing("tools/vae_mnist_tools/stack/control.py") == set()


def test_a_new_module_of_a_package_changes_nothing(project: Path) -> None:
    (project / f"{SRC}/training/warmup.py").write_text('"""A new module."""\n')
    fit = project / f"{SRC}/training/fit.py"
    fit.write_text("import vae_mnist.training.warmup\n" + fit.read_text())
    assert deps_command("check", "--root", str(project)) == 0


def test_a_package_that_train_comes_to_import_is_one_import_by_hand(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = (project / PIPELINE_FILE).read_text()
    (project / f"{SRC}/augment").mkdir()
    (project / f"{SRC}/augment/__init__.py").write_text('"""A new package."""\n')
    (project / f"{SRC}/augment/flips.py").write_text('"""Its module."""\n')
    fit = project / f"{SRC}/training/fit.py"
    fit.write_text("import vae_mnist.augment.flips\n" + fit.read_text())

    assert deps_command("check", "--root", str(project)) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f"dvc.yaml: stage train: code deps out of date: + {SRC}/augment",
        "run `make deps` to write them from the stages' imports",
    ]
    assert (project / PIPELINE_FILE).read_text() == before  # a check writes nothing

    assert deps_command("write", "--root", str(project)) == 0
    after = (project / PIPELINE_FILE).read_text()
    added = f"      - {SRC}/augment\n"
    # one line, in its sorted place in train's list; the rest of the file byte for byte
    assert after.replace(added, "", 1) == before
    lines = after.splitlines(keepends=True)
    at = lines.index(added)
    assert lines[at - 1] == "      - pipeline/train.py\n"
    assert lines[at + 1] == f"      - {SRC}/common\n"
    assert deps_command("check", "--root", str(project)) == 0


def test_a_package_no_longer_imported_leaves_the_list_and_data_deps_stay_first(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stage = project / f"{SRC}/stages/evaluate.py"  # evaluation's one importer
    lines = stage.read_text().splitlines()
    for node in reversed(ast.parse("\n".join(lines)).body):  # its imports of evaluation go
        if isinstance(node, ast.ImportFrom) and node.module.startswith("vae_mnist.evaluation"):
            del lines[node.lineno - 1 : node.end_lineno]
    stage.write_text("\n".join(lines) + "\n")

    assert deps_command("write", "--root", str(project)) == 0
    assert capsys.readouterr().out == (
        f"dvc.yaml: stage evaluate: code deps updated: - {SRC}/evaluation\n"
    )
    text, changes = derived(project)
    assert changes == {}
    deps = text.split("  evaluate:")[1].split("deps:")[1].split("params:")[0].split()
    assert deps[1:6:2] == ["models/vae.keras", "data/processed", "reports/training"]
    assert f"{SRC}/evaluation" not in deps


def test_mlflow_code_is_no_dep_even_where_a_stage_imports_it(project: Path) -> None:
    # every stage imports vae_mnist.tracking; none lists it, nor what only it imports
    for stage in STAGES:
        assert not [d for d in code_deps(project, stage) if "tracking" in d], stage


def test_a_stage_without_its_script_or_a_missing_dvc_yaml_is_one_error(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "pipeline/train.py").unlink()
    assert deps_command("check", "--root", str(project)) == 2
    assert capsys.readouterr().err == "error: stage 'train' has no script pipeline/train.py\n"
    assert deps_command("check", "--root", str(project / "pipeline")) == 2
    assert "dvc.yaml: no such file" in capsys.readouterr().err
