"""The DVC workflow end to end on one shrunk pipeline: bitwise reruns, a remote round trip,
a queued grid on two workers, a named experiment, and the matrix of what reruns on each change.

The tests share one copy of the session's built pipeline (conftest.built_pipeline) and run in
file order; each leaves the copy consistent (`dvc status` clean) for the next.
"""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Callable
from pathlib import Path

import mlflow
import pytest

from tests.support.paths import REPO
from tests.support.workspace import STAGES, Repo
from vae_mnist_tools.deps import code_deps, covers

QUEUE_TIMEOUT_S = 1200


@pytest.fixture(scope="module")
def built(built_pipeline: Repo, tmp_path_factory: pytest.TempPathFactory) -> Repo:
    """This module's copy of the session's built pipeline (shrunk, committed with its lock)."""
    return built_pipeline.copy(tmp_path_factory.mktemp("workflow") / "repo")


def stale_while(repo: Repo, path: Path, change: Callable[[], object]) -> set[str]:
    """What `dvc status` reports while `change` holds: `path` gets its bytes back after."""
    original = path.read_bytes()
    try:
        change()
        return repo.stale()
    finally:
        path.write_bytes(original)


def appended(path: Path, text: bytes) -> Callable[[], object]:
    return lambda: path.write_bytes(path.read_bytes() + text)


def store(repo: Repo) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(f"sqlite:///{repo.root / 'mlflow.db'}")


def wait_for_queue(repo: Repo) -> str:
    deadline = time.monotonic() + QUEUE_TIMEOUT_S
    while True:
        status = repo.dvc("queue", "status").stdout
        if not re.search(r"\b(Queued|Running)\b", status):
            return status
        if time.monotonic() > deadline:
            repo.dvc("queue", "kill", "--all", check=False)
            raise AssertionError(f"queue still busy after {QUEUE_TIMEOUT_S} s:\n{status}")
        time.sleep(5)


def shown_experiments(repo: Repo) -> dict[str, tuple[int, float]]:
    """What `dvc exp show` lists: experiment name -> (model.latent_dim, test -ELBO)."""
    shown = json.loads(repo.dvc("exp", "show", "--json").stdout)
    experiments = {}
    for row in shown:
        for experiment in row.get("experiments") or []:
            for rev in experiment["revs"]:
                data = rev["data"]
                latent = data["params"]["params.yaml"]["data"]["model"]["latent_dim"]
                metrics = data["metrics"]["reports/evaluation/metrics.json"]["data"]
                experiments[rev["name"]] = (latent, metrics["test"]["neg_elbo"])
    return experiments


# Every file of the code, and files that no stage reads (docs, build, tests, benchmarks).
EDITED = [
    *(str(p.relative_to(REPO)) for p in sorted((REPO / "pipeline").glob("*.py"))),
    *(str(p.relative_to(REPO)) for p in sorted((REPO / "src").rglob("*.py"))),
    *(str(p.relative_to(REPO)) for p in sorted((REPO / "tools").rglob("*.py"))),
    "README.md",
    "Makefile",
    "tests/unit/common/test_config.py",
    "benchmarks/train_throughput.py",
]


@functools.cache
def loaded_by(stage: str) -> frozenset[str]:
    return frozenset(code_deps(REPO, stage))


def importers(name: str) -> set[str]:
    """The stages whose deps hold the file, read off the imports (vae_mnist_tools.deps; what
    reruns on an edit of each package is pinned in test_deps)."""
    return {stage for stage in STAGES if any(covers(dep, name) for dep in loaded_by(stage))}


# Which stages each params change makes stale, each made alone on the committed params: the
# stages that read the key. What then reruns is DVC's cascade from those: a stage whose outs
# changed makes the stages that read them stale (`test_a_changed_out_...` below, and the
# experiments above, which rerun train then evaluate), one whose outs came out the same bytes
# does not (`test_a_retrain_to_the_same_bytes_...`, run for real).
PARAM_CHANGES = [
    ({"mlflow.experiment_name": "other", "mlflow.registered_model_name": "other"}, set()),
    ({"evaluate.iwae_samples": 3}, {"evaluate"}),
    ({"train.learning_rate": 0.002}, {"train"}),
    ({"train.lr_decay_rate": 0.5}, {"train"}),
    ({"model.latent_dim": 3}, {"train"}),
    ({"data.val_size": 6000}, {"preprocess"}),
    ({"seed": 7}, {"preprocess", "train", "evaluate"}),
    ({"data.binarize": "static"}, {"preprocess", "train", "evaluate"}),
]


def test_forced_repro_rebuilds_every_out_bit_for_bit(built: Repo) -> None:
    before = built.digests()
    assert built.repro("-f") == STAGES
    assert built.run("git", "status", "--porcelain").stdout == ""  # dvc.lock: same bytes
    assert built.digests() == before


def test_push_wipe_pull_restores_every_out_without_a_rerun(built: Repo, tmp_path: Path) -> None:
    before = built.digests()
    built.dvc("remote", "add", "--local", "--default", "scratch", str(tmp_path / "remote"))
    try:
        built.dvc("push")
        built.delete_outs_and_cache()
        assert {"download", "preprocess", "train", "evaluate"} <= built.stale()  # outs deleted
        built.dvc("pull")
    finally:
        built.dvc("remote", "remove", "--local", "scratch")
    assert built.digests() == before
    assert built.stale() == set()
    assert built.repro() == []


def test_queued_grid_on_two_workers_lands_in_one_store(built: Repo) -> None:
    client = store(built)
    versions_before = {v.version for v in client.search_model_versions("name = 'vae-mnist'")}
    built.dvc("exp", "run", "--queue", "-S", "model.latent_dim=3,4")
    built.start_queue(jobs=2)
    status = wait_for_queue(built)
    assert len(re.findall(r"\bSuccess\b", status)) == 2, status

    experiments = shown_experiments(built)  # dvc exp show: with their params and metrics
    assert sorted(latent for latent, _ in experiments.values()) == [3, 4]
    assert all(0 < loss < 300 for _, loss in experiments.values())

    # MLflow: a training run per experiment, named by it, with its own version and test metrics
    runs = client.search_runs(
        [client.get_experiment_by_name("vae-mnist").experiment_id],
        filter_string="tags.stage = 'train' and tags.`dvc.exp_name` != ''",
    )
    by_name = {run.data.tags["dvc.exp_name"]: run for run in runs}
    assert set(by_name) == set(experiments)
    head = built.run("git", "rev-parse", "HEAD").stdout.strip()
    for name, run in by_name.items():
        assert run.info.run_name == f"train@{name}"  # a grid reads as one in the runs table
        assert run.data.tags["mlflow.source.git.commit"] == head  # queued from, not DVC's copy
        assert run.data.params["model.latent_dim"] == str(experiments[name][0])
        assert run.data.metrics["test/neg_elbo"] == pytest.approx(experiments[name][1])
    versions = client.search_model_versions("name = 'vae-mnist'")
    new = {v.version: v.run_id for v in versions if v.version not in versions_before}
    assert sorted(new.values()) == sorted(run.info.run_id for run in by_name.values())

    # the two workers trained at the same time against the one sqlite file
    first, second = (run.info for run in by_name.values())
    assert first.start_time < second.end_time and second.start_time < first.end_time
    # and their evaluations, deciding at the same time, left the alias on the best version
    versions = client.search_model_versions("name = 'vae-mnist'")
    scored = [v for v in versions if "test/neg_elbo" in v.tags]
    best = min(scored, key=lambda v: float(v.tags["test/neg_elbo"]))
    assert client.get_model_version_by_alias("vae-mnist", "champion").version == best.version
    assert built.stale() == set()


def test_named_experiment_reruns_training_and_names_its_runs(built: Repo) -> None:
    result = built.dvc("exp", "run", "--name", "latent-8", "-S", "model.latent_dim=8")
    assert re.findall(r"Running stage '([^']+)'", result.stdout) == ["train", "evaluate"]
    runs = store(built).search_runs(
        [store(built).get_experiment_by_name("vae-mnist").experiment_id],
        filter_string="tags.`dvc.exp_name` = 'latent-8'",
    )
    assert sorted(run.data.tags["stage"] for run in runs) == ["evaluate", "train"]
    assert shown_experiments(built)["latent-8"][0] == 8
    assert {run.info.run_name for run in runs} == {"train@latent-8", "evaluate@latent-8"}


def test_exp_show_has_the_headline_metrics_and_not_the_per_digit_ones(built: Repo) -> None:
    columns = built.dvc("exp", "show", "--csv").stdout.splitlines()[0].split(",")
    test_metrics = {c.removeprefix("test.") for c in columns if c.startswith("test.")}
    assert test_metrics == {
        "reconstruction", "kl", "neg_elbo", "neg_iwae", "iwae_gap", "mse", "bits_per_dim",
        "active_units",
    }  # fmt: skip
    assert not [c for c in columns if "per_digit" in c], columns


def test_each_code_edit_marks_exactly_the_stages_that_import_it(built: Repo) -> None:
    wrong = {}
    for name in EDITED:
        path = built.root / name
        changed = stale_while(built, path, appended(path, b"\n# an edit\n"))
        if changed != importers(name):
            wrong[name] = sorted(changed)
    assert wrong == {}
    assert built.repro() == []


def test_each_params_change_marks_exactly_the_stages_that_read_it(built: Repo) -> None:
    assert built.repro() == []
    params = built.root / "params.yaml"
    wrong = {}
    for changes, expected in PARAM_CHANGES:
        changed = stale_while(built, params, lambda changes=changes: built.set_params(changes))
        if changed != expected:
            wrong[", ".join(changes)] = sorted(changed)
    assert wrong == {}
    assert built.repro() == []


def test_a_changed_out_makes_every_stage_that_reads_it_stale(built: Repo) -> None:
    stats = built.root / "data" / "processed" / "stats.json"
    # the out itself, and its readers
    assert stale_while(built, stats, appended(stats, b" ")) == {"preprocess", "train", "evaluate"}
    model = built.root / "models" / "vae.keras"
    assert stale_while(built, model, appended(model, b" ")) == {"train", "evaluate"}
    assert built.stale() == set()


def test_a_retrain_to_the_same_bytes_stops_the_cascade_before_evaluate(built: Repo) -> None:
    params, lock = built.root / "params.yaml", built.root / "dvc.lock"
    before = params.read_bytes(), lock.read_bytes()  # as the experiments above left them
    built.set_params({"mlflow.experiment_name": "other", "mlflow.registered_model_name": "other"})
    assert built.repro() == []  # MLflow's names are no stage's input
    params.write_bytes(before[0])
    model = (built.root / "models" / "vae.keras").read_bytes()
    built.set_params({"train.lr_decay_rate": 0.5})  # unused by the constant schedule
    assert built.repro() == ["train"]
    assert (built.root / "models" / "vae.keras").read_bytes() == model
    params.write_bytes(before[0])
    lock.write_bytes(before[1])
    assert built.repro() == []
