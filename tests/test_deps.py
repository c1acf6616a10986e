"""The deps tool: each stage's code deps in dvc.yaml are read off its script's imports, so that
adding a module is one import by hand and DVC reruns exactly what an edit touches."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from vae_mnist_tools.deps import PROJECT_FILE, code_deps, derived, main

from .conftest import REPO
from .workspace import STAGES


def stages_loading(path: str) -> set[str]:
    return {stage for stage in STAGES if path in code_deps(REPO, stage)}


def test_dvc_yaml_is_what_the_tool_writes() -> None:
    text, changes = derived(REPO)
    assert changes == {}
    assert text == (REPO / PROJECT_FILE).read_text()


def test_the_deps_keep_their_precision() -> None:
    # the champion rule is evaluate's alone; the IDX reader is preprocess's, never train's
    assert stages_loading("src/vae_mnist/tracking/champion.py") == {"evaluate"}
    assert stages_loading("src/vae_mnist/data/idx.py") == {"preprocess"}
    assert stages_loading("src/vae_mnist/common/config.py") == set(STAGES)
    # what no stage runs: the explorer, the team stack, serving, the tool itself
    for other in ["explorer/app.py", "stack/control.py", "tracking/serving.py", "deps.py"]:
        assert stages_loading(f"src/vae_mnist/{other}") == set(), other
    for stage in STAGES:
        assert code_deps(REPO, stage)[0] == f"pipeline/{stage}.py"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The stages' scripts, the package and dvc.yaml: what the tool reads."""
    for folder in ("pipeline", "src"):
        shutil.copytree(
            REPO / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(REPO / PROJECT_FILE, tmp_path)
    return tmp_path


def test_a_module_that_train_comes_to_import_is_one_import_by_hand(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = (project / PROJECT_FILE).read_text()
    (project / "src/vae_mnist/schedules.py").write_text('"""A new module."""\n')
    training = project / "src/vae_mnist/training/fit.py"
    training.write_text("import vae_mnist.schedules\n" + training.read_text())

    assert main(["--check", "--root", str(project)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        "dvc.yaml: stage train: code deps out of date: + src/vae_mnist/schedules.py",
        "run `make deps` to write them from the stages' imports",
    ]
    assert (project / PROJECT_FILE).read_text() == before  # a check writes nothing

    assert main(["--write", "--root", str(project)]) == 0
    after = (project / PROJECT_FILE).read_text()
    added = "      - src/vae_mnist/schedules.py\n"
    # one line, in its sorted place in train's list; the rest of the file byte for byte
    assert after.replace(added, "", 1) == before
    lines = after.splitlines(keepends=True)
    at = lines.index(added)
    assert lines[at - 1] == "      - src/vae_mnist/common/quantities.py\n"
    assert lines[at + 1] == "      - src/vae_mnist/stages/train.py\n"
    assert main(["--check", "--root", str(project)]) == 0


def test_a_module_no_longer_imported_leaves_the_list_and_data_deps_stay_first(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = project / "src/vae_mnist/tracking/registry.py"  # the champion rule's one reader
    text = registry.read_text()
    assert "from vae_mnist import champion\n" in text
    registry.write_text(text.replace("from vae_mnist import champion\n", ""))

    assert main(["--write", "--root", str(project)]) == 0
    assert capsys.readouterr().out == (
        "dvc.yaml: stage evaluate: code deps updated: - src/vae_mnist/tracking/champion.py\n"
    )
    text, changes = derived(project)
    assert changes == {}
    deps = text.split("  evaluate:")[1].split("deps:")[1].split("params:")[0].split()
    assert deps[1:6:2] == ["models/vae.keras", "data/processed", "reports/training"]
    assert "src/vae_mnist/tracking/champion.py" not in deps


def test_a_stage_without_its_script_or_a_missing_dvc_yaml_is_one_error(project: Path) -> None:
    (project / "pipeline/train.py").unlink()
    with pytest.raises(
        SystemExit, match=r"^error: stage 'train' has no script pipeline/train\.py$"
    ):
        main(["--check", "--root", str(project)])
    with pytest.raises(SystemExit, match=r"dvc\.yaml: no such file"):
        main(["--check", "--root", str(project / "pipeline")])
