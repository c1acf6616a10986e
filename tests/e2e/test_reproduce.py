"""Tests of reproduce.py: a registered version rebuilt from its lineage alone, and the verdict.

Each test rebuilds the session's real pipeline (one epoch, a two-sample bound) in a copy of it;
the lineage is tampered with in the copy's sqlite store, as a mistaken or dishonest record would
be."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import mlflow
import pytest

from tests.support.paths import REPO
from tests.support.workspace import BIN, Repo
from vae_mnist.experiments.noise import keep_spread
from vae_mnist.tracking.lineage import NOT_PARAMS_YAML

MODEL = "vae-mnist"


SEEDS = "2"  # the noise yardstick of the tests: the rebuild and one more seed


@pytest.fixture
def repo(built_pipeline: Repo, tmp_path) -> Repo:
    return built_pipeline.copy(tmp_path / "repo")


def reproduce(
    repo: Repo, version: str = "champion", prefix: tuple[str, ...] = (), **env: str
) -> subprocess.CompletedProcess:
    """`vae-mnist reproduce`, under `prefix` (taskset ...) and `env`: the machine."""
    command = [
        *prefix,
        str(BIN / "python"),
        "-m",
        "vae_mnist",
        "reproduce",
        version,
        "--seeds",
        SEEDS,
    ]
    return subprocess.run(
        command, cwd=repo.root, env={**repo.env, **env}, capture_output=True, text=True,
        timeout=900,
    )  # fmt: skip


def client(repo: Repo) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(f"sqlite:///{repo.root / 'mlflow.db'}")


def registry(repo: Repo) -> tuple[list[str], str]:
    """The versions and the champion: what a rebuild must never change."""
    store = client(repo)
    versions = sorted(v.version for v in store.search_model_versions(f"name = '{MODEL}'"))
    return versions, store.get_model_version_by_alias(MODEL, "champion").version


def verdicts(repo: Repo, version: str = "1") -> dict[str, str]:
    """The version's `reproduced/<machine>` tags: the verdict (then who, when, on what CPU)."""
    tags = client(repo).get_model_version(MODEL, version).tags
    return {k: v.split(" (")[0] for k, v in tags.items() if k.startswith("reproduced/")}


def noise_files(repo: Repo) -> set[Path]:
    """The seed-to-seed spreads kept in the repository (the defaults' is committed)."""
    return set((repo.root / "reports" / "noise").glob("*.json"))


def tamper(repo: Repo, sql: str, *args: str) -> None:
    with sqlite3.connect(repo.root / "mlflow.db") as db:
        assert db.execute(sql, args).rowcount >= 1
    db.close()


# A machine whose oneDNN stops at AVX2 (an AMD Zen 2 or 3, an Intel before Ice Lake) trains other
# bytes natively (benchmarks/float_stability.py): within seed noise, not identical.
AVX2_MACHINE = {"ONEDNN_MAX_CPU_ISA": "AVX2", "XLA_FLAGS": "--xla_cpu_max_isa=AVX2"}


def test_a_version_rebuilt_on_its_own_machine_is_identical_and_says_so(repo: Repo) -> None:
    before, spreads = registry(repo), noise_files(repo)
    done = reproduce(repo)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == "identical"
    assert [line.split(":")[0] for line in lines[-4:-1]] == ["preprocess", "train", "evaluate"]
    assert all(": identical" in line for line in lines[-4:-1])
    assert registry(repo) == before  # nothing registered, no alias moved
    machine = client(repo).get_model_version_by_alias(MODEL, "champion").tags["machine.id"]
    assert verdicts(repo) == {f"reproduced/{machine}": "identical"}
    assert noise_files(repo) == spreads  # identical: no yardstick needed


def test_a_commit_not_in_the_repository_cannot_be_reproduced(repo: Repo) -> None:
    run_id = client(repo).get_model_version_by_alias(MODEL, "champion").run_id
    tamper(
        repo,
        "UPDATE tags SET value = ? WHERE key = 'mlflow.source.git.commit' AND run_uuid = ?",
        "0" * 40,
        run_id,
    )
    before = registry(repo)
    done = reproduce(repo)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: {MODEL} v1: its commit {'0' * 40} is not in this repository (git fetch it first)"
    ]
    assert registry(repo) == before and verdicts(repo) == {}


def test_an_environment_that_cannot_be_built_cannot_be_reproduced(repo: Repo) -> None:
    # the version's commit, but with a uv.lock that no longer matches pyproject.toml
    version = client(repo).get_model_version_by_alias(MODEL, "champion")
    commit = client(repo).get_run(version.run_id).data.tags["mlflow.source.git.commit"]
    repo.run("git", "checkout", "-q", "-b", "another-lock", commit)
    with (repo.root / "uv.lock").open("a") as lock:
        lock.write('\n[[package]]\nname = "not-in-pyproject"\nversion = "1.0"\n')
    repo.commit("another lock")
    other = repo.run("git", "rev-parse", "HEAD").stdout.strip()
    repo.run("git", "checkout", "-q", "-")
    tamper(
        repo,
        "UPDATE tags SET value = ? WHERE key = 'mlflow.source.git.commit' AND run_uuid = ?",
        other,
        version.run_id,
    )
    before = registry(repo)
    tools = REPO / ".tools" / "bin"  # `make env` there finds this uv rather than installing one
    done = reproduce(repo, PATH=f"{tools}:{repo.env['PATH']}")
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line == "error: the environment of that commit's uv.lock: Failed to parse `uv.lock`"
    assert "rebuilding:" not in done.stdout  # nothing ran
    assert registry(repo) == before and verdicts(repo) == {}


def test_data_other_than_the_commit_makes_cannot_be_reproduced(repo: Repo) -> None:
    tamper(repo, "UPDATE datasets SET digest = 'deadbeef' WHERE name = 'mnist-train'")
    before = registry(repo)
    done = reproduce(repo)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: the data that commit makes is not what the version was")
    assert "(train: " in line and "!= deadbeef" in line
    assert "rebuilding: preprocess" in done.stdout
    assert "rebuilding: train" not in done.stdout  # found before any training
    assert registry(repo) == before and verdicts(repo) == {}


def test_params_edited_after_the_fact_rebuild_beyond_noise(repo: Repo) -> None:
    run_id = client(repo).get_model_version_by_alias(MODEL, "champion").run_id
    tamper(
        repo,
        "UPDATE params SET value = '2' WHERE key = 'train.epochs' AND run_uuid = ?",
        run_id,
    )
    # the spread of the edited configuration, as if measured before (the AVX2 test below measures
    # one): half a nat on every metric, so that no further seed trains here
    run = client(repo).get_run(run_id)
    logged = {k: v for k, v in run.data.params.items() if not k.startswith(NOT_PARAMS_YAML)}
    tests = {k: v for k, v in run.data.metrics.items() if k.startswith("test/")}
    keep_spread(repo.root, logged, {"1": tests, "2": {k: v + 0.5 for k, v in tests.items()}}, "x")
    before, spreads = registry(repo), noise_files(repo)
    done = reproduce(repo)
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == "beyond noise"
    assert any(line.startswith("train: other bytes") for line in lines)
    assert any(line.startswith("evaluate: beyond noise in ") for line in lines)
    assert any("seed-to-seed range 0.5" in line for line in lines)  # the kept one, not measured
    assert "measuring the seed-to-seed spread" not in done.stdout
    assert registry(repo) == before
    assert list(verdicts(repo).values()) == ["beyond noise"]
    assert noise_files(repo) == spreads


def test_on_an_avx2_machine_a_native_version_rebuilds_within_noise(repo: Repo) -> None:
    before, spreads = registry(repo), noise_files(repo)
    done = reproduce(repo, **AVX2_MACHINE)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == "within noise"
    assert any(line.startswith("train: other bytes") for line in lines)
    assert any(line == "evaluate: within noise" for line in lines)
    assert "measuring the seed-to-seed spread of this configuration: 1 more runs" in done.stdout
    assert registry(repo) == before
    trained_on = client(repo).get_model_version(MODEL, "1").tags["machine.id"]
    ((machine, verdict),) = verdicts(repo).items()
    assert verdict == "within noise" and machine != f"reproduced/{trained_on}"
    (kept,) = noise_files(repo) - spreads
    assert set(json.loads(kept.read_text())["runs"]) == {"42", "43"}  # the rebuild's seed, one more


def test_a_portable_version_rebuilds_identical_on_an_avx2_machine_with_one_core(
    repo: Repo,
) -> None:
    repo.set_params({"floats": "portable"})
    repo.commit("portable floats")
    assert repo.repro() == ["train", "evaluate"]
    done = reproduce(repo, "2", prefix=("taskset", "-c", "0"), **AVX2_MACHINE)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "identical"
    assert list(verdicts(repo, "2").values()) == ["identical"]
