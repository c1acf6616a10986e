"""`make reproduce V=<number|alias>`: rebuild a registered version from its lineage alone and say
whether the rebuild is the same.

The lineage is what the store recorded (tracking/lineage.py): the commit, checked out in a
temporary git worktree; the params the training run logged, written into that worktree's
params.yaml (not today's); the environment that commit's uv.lock gives (this one when the lock is
the same); the raw data from the DVC cache, else from the download stage's mirrors, verified
against its digests. Every stage then runs again for real (no run-cache) into a store of the
worktree's own, so that nothing is registered or moved in the version's store, and the rebuild's
lineage is held against the record:

- identical: the data digests, the model file's sha256 and every test metric;
- within noise: the model's bytes differ (another CPU kind: machine.py) and every test metric
  differs from the record by less than the seeds of this configuration differ among themselves;
- beyond noise (exit 1); cannot reproduce (exit 2: one line naming what is missing).

The seed-to-seed spread is measured, not assumed: the rebuild and SEEDS - 1 more seeds of the
same params, kept by noise.py in reports/noise/: each configuration is measured once.
The verdict is tagged on the version, `reproduced/<machine id>`, so the MLflow UI shows it.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from ruamel.yaml import YAML

from vae_mnist.common.config import PARAMS_FILE, load_config, project_root, set_dotted
from vae_mnist.common.errors import CannotReproduce
from vae_mnist.common.machine import fingerprint, lock_digest
from vae_mnist.common.pipeline import PREPROCESS, TRAIN
from vae_mnist.common.tensorflow_env import quiet_tensorflow
from vae_mnist.experiments.noise import keep_spread, read_spread
from vae_mnist.tracking.lineage import (
    Lineage,
    latest_version,
    made_data,
    read_lineage,
    record_verdict,
)
from vae_mnist.tracking.store import shown_uri, sqlite_uri
from vae_mnist.tracking.versions import find_version

SEEDS = 4  # seeds whose spread is the yardstick: the rebuild's own and three more
RAW = "data/raw"  # the download stage's out: from the DVC cache when it holds it
FIRST_COMPUTED, TRAINED = PREPROCESS, TRAIN  # the stages rebuilt from the raw files on
SOURCES = ("checkout", "pull")  # the raw files from the DVC cache, else from the DVC remote

IDENTICAL, WITHIN, BEYOND = "identical", "within noise", "beyond noise"
EXIT_CODES = {IDENTICAL: 0, WITHIN: 0, BEYOND: 1}


@dataclass(frozen=True)
class Verdict:
    verdict: str
    lines: list[str]  # one per stage

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]


def check_lineage(lineage: Lineage, root: Path, name: str) -> str:
    """The commit to rebuild from; CannotReproduce naming what the lineage lacks."""
    what = f"{name} v{lineage.version}"
    if not lineage.commit:
        raise CannotReproduce(f"{what}: its training run recorded no commit")
    known = _git(root, "cat-file", "-e", f"{lineage.commit}^{{commit}}", check=False)
    if known.returncode != 0:
        raise CannotReproduce(
            f"{what}: its commit {lineage.commit} is not in this repository (git fetch it first)"
        )
    if lineage.dirty:
        raise CannotReproduce(
            f"{what} was trained in a workspace with uncommitted changes to {lineage.commit[:7]}: "
            "the code it ran is in no commit"
        )
    if not lineage.model_sha256 or not lineage.data:
        raise CannotReproduce(f"{what}: its record lacks the model digest or the data digests")
    return lineage.commit


def _git(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=check)


@contextlib.contextmanager
def worktree(root: Path, commit: str, keep: bool = False) -> Iterator[Path]:
    """A detached git worktree of `commit` in a temporary folder; removed after, unless `keep`."""
    tree = Path(tempfile.mkdtemp(prefix="vae-mnist-reproduce-")) / "tree"
    _git(root, "worktree", "add", "--detach", "--quiet", str(tree), commit)
    try:
        yield tree
    finally:
        if keep:
            print(f"kept: {tree}")
        else:
            _git(root, "worktree", "remove", "--force", str(tree), check=False)
            shutil.rmtree(tree.parent, ignore_errors=True)


def apply_params(path: Path, logged: Mapping[str, str]) -> None:
    """Set params.yaml's keys to the values the training run logged (MLflow keeps them as text,
    which YAML 1.2 reads back: `0.001`, `[512, 256, 128]`, `none`)."""
    yaml = YAML()
    tree = yaml.load(path.read_text())
    scalar = YAML(typ="safe")
    for key, text in logged.items():
        try:
            set_dotted(tree, key, scalar.load(text), new=False)
        except KeyError:
            raise CannotReproduce(
                f"the logged param {key} is not a key of params.yaml at that commit"
            ) from None
    with path.open("w") as out:
        yaml.dump(tree, out)


def environment(tree: Path, root: Path) -> dict[str, str]:
    """The stages' environment: that commit's own (`make env` in the worktree) unless its
    uv.lock is this one's; the worktree's own MLflow store."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DVC_", "MLFLOW_"))}
    env["MLFLOW_TRACKING_URI"] = sqlite_uri(tree)
    bin_dir = Path(sys.executable).parent
    if lock_digest(tree) != lock_digest(root):
        tools = root / ".tools" / "bin"
        env["PATH"] = os.pathsep.join([str(tools), env.get("PATH", "")])
        built = subprocess.run(["make", "env"], cwd=tree, env=env, capture_output=True, text=True)
        if built.returncode != 0:
            said = (built.stderr + built.stdout).strip().splitlines() or ["no output"]
            why = next((line for line in said if line.lower().startswith("error")), said[-1])
            why = why.removeprefix("error: ").removeprefix("ERROR: ")
            raise CannotReproduce(f"the environment of that commit's uv.lock: {why}")
        bin_dir = tree / ".venv" / "bin"
    env["PATH"] = os.pathsep.join([str(bin_dir), env.get("PATH", "")])
    return env


def rebuild(
    tree: Path, root: Path, env: Mapping[str, str], recorded: Lineage, experiment: str
) -> float:
    """Run every stage again, for real (no run-cache); the seconds it took. The raw files come
    from the DVC cache or remote if either holds them, else the download stage fetches them.
    The data is checked before the training: other data is a lineage that cannot hold."""
    started = time.monotonic()
    run = {"cwd": tree, "env": dict(env), "capture_output": True, "text": True}
    cache = root / ".dvc" / "cache"
    subprocess.run(["dvc", "cache", "dir", "--local", str(cache)], **run)
    found = any(subprocess.run(["dvc", verb, RAW], **run).returncode == 0 for verb in SOURCES)
    scope = ["--single-item"] if found else []  # else download first, from the mirrors
    print(f"rebuilding: {'' if found else 'download, '}{FIRST_COMPUTED}", flush=True)
    _repro(["dvc", "repro", "--force", "--no-run-cache", *scope, FIRST_COMPUTED], run)
    check_data(recorded.data, made_data(experiment, sqlite_uri(tree)))
    print(f"rebuilding: {TRAINED} and what follows it", flush=True)
    _repro(["dvc", "repro", "--force", "--no-run-cache", "--downstream", TRAINED], run)
    return time.monotonic() - started


def check_data(recorded: Mapping[str, str], made: Mapping[str, str]) -> None:
    """CannotReproduce unless every recorded split's digest is what the rebuild made."""
    differ = ", ".join(
        f"{split}: {made.get(split)} != {digest}"
        for split, digest in recorded.items()
        if made.get(split) != digest
    )
    if differ:
        raise CannotReproduce(
            f"the data that commit makes is not what the version was trained and tested on "
            f"({differ})"
        )


def _repro(command: list[str], run: dict) -> None:
    done = subprocess.run(command, **run)
    if done.returncode != 0:
        errors = [line for line in done.stderr.splitlines() if line.startswith("error")]
        last = errors[-1] if errors else (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise CannotReproduce(f"the rebuild failed: {' '.join(command)}: {last}")


def rebuilt_lineage(tree: Path, model_name: str) -> Lineage:
    store = sqlite_uri(tree)
    version = latest_version(model_name, store)
    if version is None:
        raise CannotReproduce(f"the rebuild registered no version of {model_name}")
    return read_lineage(model_name, version, store)


def compare(recorded: Lineage, rebuilt: Lineage, spread: Mapping[str, float] | None) -> Verdict:
    """The verdict, and a line for each stage. `spread`: each test metric's seed-to-seed range
    (needed only when the bytes differ)."""
    lines = []
    check_data(recorded.data, rebuilt.data)
    lines.append(f"preprocess: identical (data digests {', '.join(recorded.data.values())})")
    if rebuilt.params != recorded.params:
        differ = sorted(k for k in recorded.params if rebuilt.params.get(k) != recorded.params[k])
        raise CannotReproduce(f"the rebuild ran with other params: {', '.join(differ)}")
    same_bytes = rebuilt.model_sha256 == recorded.model_sha256
    lines.append(
        "train: identical (model sha256 " + recorded.model_sha256[:12] + ")"
        if same_bytes
        else f"train: other bytes (model sha256 {rebuilt.model_sha256[:12]}, recorded "
        f"{recorded.model_sha256[:12]}; trained on machine {recorded.machine or 'unknown'})"
    )
    if same_bytes and rebuilt.metrics == recorded.metrics:
        lines.append(f"evaluate: identical ({len(recorded.metrics)} test metrics)")
        return Verdict(IDENTICAL, lines)
    beyond = []
    for metric, value in recorded.metrics.items():
        got = rebuilt.metrics.get(metric)
        allowed = (spread or {}).get(metric)
        off = None if got is None else abs(got - value)
        if off is None or allowed is None or off > allowed:
            beyond.append(metric)
        lines.append(
            f"  {metric}: {_n(got)} against {_n(value)} (difference {_n(off)}, seed-to-seed "
            f"range {_n(allowed)})"
        )
    verdict = BEYOND if beyond else WITHIN
    head = "evaluate: " + (f"beyond noise in {', '.join(beyond)}" if beyond else "within noise")
    return Verdict(verdict, [*lines[:2], head, *lines[2:]])


def _n(value: float | None) -> str:
    return "none" if value is None else f"{value:.6g}"


def seed_spread(
    tree: Path,
    env: Mapping[str, str],
    model_name: str,
    first: Lineage,
    seeds: int,
    seconds: float,
    root: Path,
) -> dict[str, float]:
    """Each test metric's range over `seeds` seeds of `first`'s params: measured once per
    configuration (the rebuild is the first seed), then read from reports/noise/."""
    if (kept := read_spread(root, first.params)) is not None:
        return kept.range
    base = int(first.params["seed"])
    others = [base + i for i in range(1, seeds)]
    print(
        f"measuring the seed-to-seed spread of this configuration: {len(others)} more runs "
        f"(seeds {', '.join(map(str, others))}), about {len(others) * seconds / 60:.0f} min",
        flush=True,
    )
    runs = {str(base): first.metrics}
    for seed in others:
        apply_params(tree / PARAMS_FILE, {"seed": str(seed)})
        run = {"cwd": tree, "env": dict(env), "capture_output": True, "text": True}
        _repro(["dvc", "repro", "--no-run-cache"], run)
        runs[str(seed)] = rebuilt_lineage(tree, model_name).metrics
    spread = keep_spread(root, first.params, runs, fingerprint(root)["id"])
    print(f"the spread is kept in {spread.path.relative_to(root)}: commit it to share it")
    return spread.range


def reproduce(ref: str, seeds: int = SEEDS, keep: bool = False) -> Verdict:
    """Rebuild version `ref` (a number or an alias) and judge it; the verdict is also tagged on
    the version."""
    quiet_tensorflow()  # the stages' settings, which their machine fingerprint records too
    root = project_root()
    names = load_config(root / PARAMS_FILE).mlflow
    model_name, experiment = names.registered_model_name, names.experiment_name
    version = find_version(model_name, ref)
    recorded = read_lineage(model_name, version)
    commit = check_lineage(recorded, root, model_name)
    here = fingerprint(root)
    print(
        f"{model_name} v{version}: trained at {commit[:7]} on machine "
        f"{recorded.machine or 'unknown'}; rebuilding here, on machine {here['id']} "
        f"({shown_uri()} is not written to until the verdict)",
        flush=True,
    )
    with worktree(root, commit, keep) as tree:
        apply_params(tree / PARAMS_FILE, recorded.params)
        env = environment(tree, root)
        seconds = rebuild(tree, root, env, recorded, experiment)
        rebuilt = rebuilt_lineage(tree, model_name)
        spread = None
        if rebuilt.model_sha256 != recorded.model_sha256 or rebuilt.metrics != recorded.metrics:
            spread = seed_spread(tree, env, model_name, rebuilt, seeds, seconds, root)
        verdict = compare(recorded, rebuilt, spread)
    checked = f"{getpass.getuser()}, {time.strftime('%Y-%m-%d %H:%M %Z')}, {here['cpu']}"
    record_verdict(model_name, version, here["id"], f"{verdict.verdict} ({checked})")
    return verdict
