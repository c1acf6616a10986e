"""A throwaway copy of the repository that end-to-end tests drive as a user would."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from tests.support.paths import REPO
from vae_mnist.common.config import set_dotted
from vae_mnist.common.pipeline import stages

BIN = Path(sys.executable).parent
STAGES = list(stages(REPO))  # dvc.yaml's, in order
OUTS = ["data/raw", "data/processed", "models/vae.keras", "reports/training",
        "reports/evaluation"]  # fmt: skip


class Repo:
    """A throwaway clone of the working tree (committed or not), driven like a user would."""

    def __init__(self, root: Path, mirror: str | None, clone_of: str | None = None) -> None:
        """A copy of the working tree, or with `clone_of` a `git clone` of that URL."""
        self.root = root
        self.env = user_env(mirror)
        if clone_of is not None:
            root.mkdir(parents=True, exist_ok=True)
            self.run("git", "clone", "-q", clone_of, ".")
            return
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=REPO,
            capture_output=True,
            check=True,
        ).stdout.decode()
        for name in filter(None, listed.split("\0")):
            source = REPO / name
            if source.is_file():  # skip files deleted in the working tree
                (root / name).parent.mkdir(parents=True, exist_ok=True)
                (root / name).write_bytes(source.read_bytes())
        self.run("git", "init", "-q")
        self.run("git", "add", "-A")
        self.run("git", "commit", "-qm", "copy")

    @classmethod
    def at(cls, root: Path, mirror: str | None) -> Repo:
        """The workspace that another process of this session made at `root`, as it left it."""
        repo = object.__new__(cls)
        repo.root, repo.env = root, user_env(mirror)
        return repo

    def copy(self, root: Path) -> Repo:
        """A copy of this workspace at `root` that owns all it holds: git, outs, MLflow store.

        The DVC cache is hard-linked (DVC never writes a cache file in place, and makes them
        read-only); everything else is copied, since tests damage outs in place. DVC's own
        temporary folder (locks, the experiment queue) is left behind, as a fresh clone has none.
        """

        def copy_or_link(source: str, target: str) -> None:
            cached = Path(source).is_relative_to(self.root / ".dvc" / "cache")
            os.link(source, target) if cached else shutil.copy2(source, target)

        def dvc_tmp(folder: str, names: list[str]) -> list[str]:
            return ["tmp"] if Path(folder) == self.root / ".dvc" else []

        shutil.copytree(self.root, root, symlinks=True, copy_function=copy_or_link, ignore=dvc_tmp)
        relocate_store(root / "mlflow.db", self.root, root)
        copied = object.__new__(Repo)
        copied.root, copied.env = root, dict(self.env)
        return copied

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            args, cwd=self.root, env=self.env, capture_output=True, text=True, timeout=900
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def start_queue(self, jobs: int) -> None:
        """`dvc queue start`: it returns at once and leaves its workers running in the background.

        The workers inherit the command's stdout and stderr, so these go to a file: a pipe would
        keep `run` waiting for the last worker to exit, and one worker here hung in dvc-task's
        shutdown after its task had succeeded, holding the pipe open for good.
        """
        with tempfile.TemporaryFile("w+") as output:
            result = subprocess.run(
                [str(BIN / "dvc"), "queue", "start", "--jobs", str(jobs)],
                cwd=self.root, env=self.env, stdout=output, stderr=subprocess.STDOUT, timeout=120,
            )  # fmt: skip
            if result.returncode != 0:
                output.seek(0)
                raise AssertionError(f"dvc queue start failed:\n{output.read()}")

    def repro(self, *targets: str) -> list[str]:
        """Run `dvc repro` and return the stages DVC reports it ran (its output: `printed`)."""
        result = self.run(str(BIN / "dvc"), "repro", *targets)
        self.printed = result.stdout + result.stderr
        return re.findall(r"Running stage '([^']+)'", result.stdout)

    def status(self, *targets: str) -> dict[str, list[Any]]:
        """What `dvc status [targets]` reports, by stage: asked of DVC in this process (as the
        CLI's `--json` would give it), without a DVC start per question."""
        from dvc.repo import Repo as DvcRepo

        # From the repository's root, as the CLI runs: DVC reads a target's dvc.yaml relative to
        # the process's working directory, not to the Repo's root (elsewhere it would load another
        # checkout's stages, whose outs lie outside this repo: DVC's `assert self.is_in_repo`).
        with contextlib.chdir(self.root), DvcRepo(str(self.root)) as dvc:
            found = dvc.status(targets=list(targets) or None)
        return {address.rsplit(":", 1)[-1]: changes for address, changes in found.items()}

    def stale(self) -> set[str]:
        """The stages `dvc status` reports changed: the empty set when up to date."""
        return set(self.status())

    def dvc(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(str(BIN / "dvc"), *args, check=check)

    def commit(self, message: str) -> None:
        self.run("git", "add", "-A")
        self.run("git", "commit", "-qm", message)

    def digests(self) -> dict[str, str]:
        """sha256 of every file in every out."""
        files = []
        for out in OUTS:
            path = self.root / out
            files += sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        return {str(f.relative_to(self.root)): hashlib.sha256(f.read_bytes()).hexdigest()
                for f in files}  # fmt: skip

    def delete_outs_and_cache(self) -> None:
        """What a lost disk leaves: no out, no DVC cache; only a remote can bring them back."""
        for out in OUTS:
            path = self.root / out
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        shutil.rmtree(self.root / ".dvc" / "cache")

    def set_params(self, changes: dict[str, Any]) -> None:
        """Set dotted keys in params.yaml (rewritten as plain YAML; DVC compares values)."""
        params = self.root / "params.yaml"
        tree = yaml.safe_load(params.read_text())
        for dotted, value in changes.items():
            set_dotted(tree, dotted, value, new=False)  # a misspelt key would change nothing
        params.write_text(yaml.safe_dump(tree, sort_keys=False))

    def set_param(self, old: str, new: str) -> None:
        params = self.root / "params.yaml"
        text = params.read_text()
        assert old in text
        params.write_text(text.replace(old, new, 1))


def user_env(mirror: str | None) -> dict[str, str]:
    """The environment a user's shell gives `dvc`: this project's tools first on PATH, no
    DVC, MLflow or vae-mnist setting of the test run's own, and MNIST from `mirror`."""
    own = ("DVC_", "MLFLOW_", "VAE_MNIST_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(own)}
    env.update(
        PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}",
        DVC_NO_ANALYTICS="1",
        GIT_AUTHOR_NAME="test",
        GIT_AUTHOR_EMAIL="test@example.invalid",
        GIT_COMMITTER_NAME="test",
        GIT_COMMITTER_EMAIL="test@example.invalid",
    )
    if mirror is not None:
        env["MNIST_MIRROR"] = mirror
    return env


def relocate_store(database: Path, old: Path, new: Path) -> None:
    """Point a copied sqlite MLflow store at its new folder: its experiments, runs and model
    versions name their artifacts by absolute path (as the project's store does, so that DVC's
    experiment copies log into it)."""
    if not database.is_file():
        return
    with sqlite3.connect(database) as db:
        tables = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        for (table,) in tables:
            for _, column, kind, *_ in db.execute(f"PRAGMA table_info('{table}')"):
                if kind.upper().startswith(("VARCHAR", "TEXT")):
                    db.execute(
                        f'UPDATE "{table}" SET "{column}" = replace("{column}", ?, ?) '
                        f'WHERE instr("{column}", ?) > 0',
                        (str(old), str(new), str(old)),
                    )
    db.close()
