"""Each stage's code deps in dvc.yaml, derived from the imports of its script.

DVC reruns a stage when a file it lists changes. A stage lists its entry script, its own module
in `vae_mnist.stages`, and every package of the library that computes what it writes: the
packages its script and stage module import, directly or through each other. `tracking` is never
one: MLflow code writes no DVC out, so renaming a tag retrains nothing. Written by hand the list
drifts; here it is read off the code (`vae-mnist deps write`, `make deps`), and `make lint`
checks it (`vae-mnist deps check`). What reruns on an edit of each package: docs/development.md.
"""

from __future__ import annotations

import ast
import io
import sys
from pathlib import Path

import click
from ruamel.yaml import YAML

from vae_mnist.common.errors import ConfigError
from vae_mnist.common.outputs import atomic_file
from vae_mnist.common.pipeline import PIPELINE_FILE

PACKAGE = "vae_mnist"
SOURCE = "src"  # where the package lives, as the stages' PYTHONPATH says
SCRIPTS = "pipeline"  # a stage's entry script: pipeline/<stage>.py
STAGES = "stages"  # the package of the stage modules: each stage lists its own module alone
NOT_DEPS = ("tracking",)  # packages that write no out: MLflow


def imported_modules(path: Path) -> set[str]:
    """The package's names that `path` imports: modules, and names that may be modules."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in names if name.split(".")[0] == PACKAGE}


def module_file(root: Path, name: str) -> Path | None:
    """The file of a module of the package, or None for a package or a name that is no module."""
    path = root.joinpath(SOURCE, *name.split(".")).with_suffix(".py")
    return path if path.is_file() else None


def code_deps(root: Path, stage: str) -> list[str]:
    """The stage's script, the library packages it computes with and the stage modules it runs,
    as paths relative to root: the script first, then the packages and modules, sorted."""
    script = root / SCRIPTS / f"{stage}.py"
    if not script.is_file():
        raise ConfigError(f"stage {stage!r} has no script {script.relative_to(root)}")
    seen: set[Path] = set()
    deps: set[Path] = set()
    todo = [script]
    while todo:
        for name in imported_modules(todo.pop()):
            file = module_file(root, name)
            if file is None or file in seen:
                continue
            seen.add(file)
            package = file.relative_to(root / SOURCE / PACKAGE).parts[0]
            if package in NOT_DEPS:
                continue  # nor what it imports: tracking imports common alone
            todo.append(file)
            deps.add(file if package == STAGES else root / SOURCE / PACKAGE / package)
    return [str(script.relative_to(root)), *sorted(str(d.relative_to(root)) for d in deps)]


def is_code(dep: str) -> bool:
    return dep.startswith((f"{SCRIPTS}/", f"{SOURCE}/"))


def covers(dep: str, path: str) -> bool:
    """Whether a dep (a file, or a package's folder) holds the file `path`."""
    return path == dep or path.startswith(f"{dep}/")


def _yaml() -> YAML:
    yaml = YAML()  # round-trip: comments, order and folded commands kept
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 100
    return yaml


def derived(root: Path) -> tuple[str, dict[str, tuple[list[str], list[str]]]]:
    """dvc.yaml as it should read, and per stage whose code deps differ from its imports: the
    deps it lacks and the deps it lists but does not need. A stage's other deps (its data) stay
    first, in their order."""
    yaml = _yaml()
    path = root / PIPELINE_FILE
    if not path.is_file():
        raise ConfigError(f"{path}: no such file (run from the project's root, or --root)")
    project = yaml.load(path.read_text())
    changes = {}
    for stage, spec in project["stages"].items():
        listed = [str(dep) for dep in spec.get("deps", [])]
        wanted = code_deps(root, stage)
        if [dep for dep in listed if is_code(dep)] != wanted:
            have = set(listed)
            changes[stage] = (
                [dep for dep in wanted if dep not in have],
                [dep for dep in listed if is_code(dep) and dep not in wanted],
            )
            data = [dep for dep in spec.get("deps", []) if not is_code(str(dep))]
            spec["deps"] = [*data, *wanted]
    out = io.StringIO()
    yaml.dump(project, out)
    return out.getvalue(), changes


def report(changes: dict[str, tuple[list[str], list[str]]], verb: str) -> list[str]:
    lines = []
    for stage, (missing, extra) in changes.items():
        files = [*(f"+ {dep}" for dep in missing), *(f"- {dep}" for dep in extra)]
        lines.append(
            f"{PIPELINE_FILE}: stage {stage}: code deps {verb}: {', '.join(files) or 'order'}"
        )
    return lines


@click.group()
def deps() -> None:
    """Each stage's code deps in dvc.yaml, read off its script's imports."""


ROOT = click.option(
    "--root", type=click.Path(path_type=Path), default=Path(), help="the project (default: here)"
)


@deps.command()
@ROOT
def check(root: Path) -> None:
    """Exit 1, naming each stage, if dvc.yaml's code deps are not the stages' imports."""
    _, changes = derived(root)
    if changes:
        for line in report(changes, "out of date"):
            print(line, file=sys.stderr)
        print("run `make deps` to write them from the stages' imports", file=sys.stderr)
        sys.exit(1)


@deps.command()
@ROOT
def write(root: Path) -> None:
    """Rewrite the lists that are out of date, leaving the rest of dvc.yaml as it is."""
    text, changes = derived(root)
    for line in report(changes, "updated"):
        print(line)
    if changes:
        with atomic_file(root / PIPELINE_FILE) as staging:
            staging.write_text(text)
