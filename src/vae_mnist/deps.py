"""Each stage's code deps in dvc.yaml, derived from the imports of its script.

DVC reruns a stage when a file it lists changes, so the list must be exactly the modules the
stage loads: one more and an unrelated edit reruns it, one fewer and an edit does not. Written by
hand it drifts; here it is read off the code (`make deps` writes it, `make lint` checks it).
Packages' __init__.py files are left out: they hold no code (tests/test_dvc_yaml.py checks).

    python -m vae_mnist.deps --check   # one line per stage whose list is not its imports; exit 1
    python -m vae_mnist.deps --write   # rewrite those lists, leaving the rest of dvc.yaml as it is
"""

from __future__ import annotations

import argparse
import ast
import io
import sys
from pathlib import Path

from ruamel.yaml import YAML

from vae_mnist.outputs import atomic_file

PACKAGE = "vae_mnist"
SOURCE = "src"  # where the package lives, as the stages' PYTHONPATH says
SCRIPTS = "pipeline"  # a stage's entry script: pipeline/<stage>.py
PROJECT_FILE = "dvc.yaml"


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
    """The stage's script and every module of the package that running it loads, as paths
    relative to root: the script first, the modules sorted."""
    script = root / SCRIPTS / f"{stage}.py"
    if not script.is_file():
        raise SystemExit(f"error: stage {stage!r} has no script {script.relative_to(root)}")
    seen: set[Path] = set()
    todo = [script]
    while todo:
        for name in imported_modules(todo.pop()):
            file = module_file(root, name)
            if file is not None and file not in seen:
                seen.add(file)
                todo.append(file)
    return [str(script.relative_to(root)), *sorted(str(f.relative_to(root)) for f in seen)]


def is_code(dep: str) -> bool:
    return dep.startswith((f"{SCRIPTS}/", f"{SOURCE}/"))


def _yaml() -> YAML:
    yaml = YAML()  # round-trip: comments, order and folded commands kept
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 100
    return yaml


def derived(root: Path) -> tuple[str, dict[str, tuple[list[str], list[str]]]]:
    """dvc.yaml as it should read, and per stage whose code deps differ from its imports: the
    files it lacks and the files it lists but does not load. A stage's other deps (its data)
    stay first, in their order."""
    yaml = _yaml()
    path = root / PROJECT_FILE
    if not path.is_file():
        raise SystemExit(f"error: {path}: no such file (run from the project's root, or --root)")
    text = path.read_text()
    project = yaml.load(text)
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vae_mnist.deps", description=__doc__.split("\n")[0]
    )
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--check", action="store_true", help="exit 1 if dvc.yaml is out of date")
    action.add_argument("--write", action="store_true", help="bring dvc.yaml up to date")
    parser.add_argument("--root", type=Path, default=Path(), help="the project (default: here)")
    args = parser.parse_args(argv)
    text, changes = derived(args.root)
    said = sys.stdout if args.write else sys.stderr
    for stage, (missing, extra) in changes.items():
        files = [*(f"+ {dep}" for dep in missing), *(f"- {dep}" for dep in extra)]
        verb = "updated" if args.write else "out of date"
        print(f"{PROJECT_FILE}: stage {stage}: code deps {verb}: {', '.join(files) or 'order'}",
              file=said)  # fmt: skip
    if args.write and changes:
        with atomic_file(args.root / PROJECT_FILE) as staging:
            staging.write_text(text)
    elif changes:
        print("run `make deps` to write them from the stages' imports", file=said)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
