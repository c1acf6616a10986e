"""The shape of the code, checked: the import rules `make lint` holds (each broken on purpose in
a copy of the code, and seen to fail), what `import vae_mnist` costs, and the one CLI."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.support.paths import REPO
from vae_mnist.cli import cli

# Every command the README and the Makefile name; `vae-mnist --help` lists exactly these.
COMMANDS = [
    "deps", "explore", "recipes", "report", "reproduce", "serve", "stack", "sweeps", "tracking",
]  # fmt: skip


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """import-linter as `make lint` runs it, on the copy's own packages (PYTHONPATH first)."""
    env = {**os.environ, "PYTHONPATH": f"{root / 'src'}{os.pathsep}{root / 'tools'}"}
    return subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        cwd=root, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.fixture
def code(tmp_path: Path) -> Path:
    for part in ("src", "tools"):
        shutil.copytree(REPO / part, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    return tmp_path


def local_imports_without_a_reason(roots: list[Path]) -> list[str]:
    """Each block of imports inside a function whose first line has no comment on it or just
    above it. The CLI is exempt: its module docstring gives the one reason for all of its own."""
    found = []
    for path in sorted(p for root in roots for p in root.rglob("*.py")):
        if path == REPO / "src" / "vae_mnist" / "cli.py":
            continue
        lines = path.read_text().splitlines()
        for function in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            imports = sorted(
                (n for n in ast.walk(function) if isinstance(n, ast.Import | ast.ImportFrom)),
                key=lambda n: n.lineno,
            )
            end = None
            for node in imports:
                between = lines[end : node.lineno - 1] if end is not None else ["x"]
                end = node.end_lineno
                if all(not line.strip() for line in between):
                    continue  # the same block as the import before it
                line, above = lines[node.lineno - 1], lines[node.lineno - 2].strip()
                if "#" not in line and not above.startswith("#"):
                    found.append(f"{path.name}:{node.lineno}: {line.strip()}")
    return found


def test_make_lint_runs_the_import_rules() -> None:
    dry = subprocess.run(
        ["make", "--dry-run", "lint"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    assert "lint-imports --no-cache" in dry


def test_the_code_as_committed_keeps_every_rule(code: Path) -> None:
    result = lint_imports(code)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        (  # a lower layer reaching up
            "model/vae.py", "import vae_mnist.stages.train",
            "The layers: a package imports only the layers below it",
        ),
        (  # tracking uses common alone
            "tracking/runs.py", "import vae_mnist.data.arrays",
            "The layers: a package imports only the layers below it",
        ),
        (  # siblings of one layer
            "evaluation/metrics.py", "import vae_mnist.training.fit",
            "The computing siblings stay apart",
        ),
        (
            "experiments/recipes.py", "import vae_mnist.apps.explorer.library",
            "Siblings stay apart: neither of a layer's packages imports the other",
        ),
        (  # one stage's deps would be another's
            "stages/evaluate.py", "import vae_mnist.stages.train",
            "A stage imports no other stage (its DVC deps are its own)",
        ),
        ("stages/train.py", "import mlflow", "MLflow is spoken by tracking alone"),
        ("data/splits.py", "import keras", "common and data load no TensorFlow"),
        (  # the library never imports its tooling
            "common/config.py", "import vae_mnist_tools.stack",
            "The layers: a package imports only the layers below it",
        ),
    ],
)  # fmt: skip
def test_an_import_that_breaks_a_rule_fails_lint_naming_the_rule(
    code: Path, module: str, line: str, contract: str
) -> None:
    path = code / "src" / "vae_mnist" / module
    path.write_text(path.read_text() + f"\n{line}  # noqa\n")
    result = lint_imports(code)
    assert result.returncode == 1, result.stdout
    broken = result.stdout.split("Broken contracts")[1]
    assert contract in broken
    assert line.split()[-1] in broken


def test_importing_the_package_loads_neither_tensorflow_nor_mlflow() -> None:
    probe = (
        "import sys, vae_mnist, vae_mnist.cli\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'keras', 'mlflow',"
        " 'dvc', 'optuna'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout == "[]\n"


def test_the_help_lists_every_command_and_each_answers_its_own_help() -> None:
    runner = CliRunner()
    top = runner.invoke(cli, ["--help"])
    assert top.exit_code == 0, top.output
    listed = [line.split()[0] for line in top.output.split("Commands:")[1].splitlines() if line]
    assert listed == COMMANDS
    assert sorted(cli.list_commands(None)) == COMMANDS  # type: ignore[arg-type]  # no context needed

    def walk(path: list[str]) -> None:
        result = runner.invoke(cli, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert f"Usage: cli {' '.join(path)}".rstrip() in result.output
        command = cli
        for name in path:
            command = command.get_command(None, name)  # type: ignore[arg-type,union-attr]
        for name in getattr(command, "list_commands", lambda ctx: [])(None):
            walk([*path, name])

    walk([])


def test_python_dash_m_is_the_same_command() -> None:
    def run(*argv: str) -> str:
        return subprocess.run(
            [*argv, "--help"], capture_output=True, text=True, check=True, cwd=REPO
        ).stdout

    script = Path(sys.executable).parent / "vae-mnist"
    assert run(sys.executable, "-m", "vae_mnist").replace("python -m vae_mnist", "vae-mnist") == (
        run(str(script))
    )


def test_a_mistyped_command_is_one_line_and_exit_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "vae_mnist", "reprodcue"], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "No such command 'reprodcue'" in result.stderr
    assert "Traceback" not in result.stderr


def test_every_function_local_import_says_why() -> None:
    assert local_imports_without_a_reason([REPO / "src", REPO / "tools"]) == []


def test_a_function_local_import_without_a_reason_is_found(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text(
        "def f():\n    import json\n\n    import csv\n\n"
        "def g():\n    # heavy: only here\n    import json\n\n    import csv\n"
    )
    assert [hit.split(": ", 1)[1] for hit in local_imports_without_a_reason([tmp_path])] == [
        "import json"
    ]
