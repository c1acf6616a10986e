"""`make sweep`: an Optuna study whose trials are DVC experiments of the real pipeline (shrunk),
on the default sqlite study and on the team stack's PostgreSQL; pruning, interruption and
resumption as a user meets them."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import mlflow
import optuna
import pytest
import yaml
from optuna.trial import TrialState

from vae_mnist.common.errors import ConfigError
from vae_mnist.experiments.studies import as_recipe, experiment_names, storage_url, suggest
from vae_mnist.experiments.sweeps import Dimension, load_sweeps
from vae_mnist_tools.stack.state import Stack

from .conftest import REPO, log_in
from .workspace import BIN, Repo

WAIT_S = 300
SWEEPS = """\
tiny:
  description: a learning rate, one epoch a trial
  space:
    train.learning_rate: {low: 0.0005, high: 0.005, log: true}
  objective: val/neg_elbo
  trials: 3
  pruning: false
longer:
  description: two epochs a trial, pruned from the first on, once one trial has finished
  fixed: {train.epochs: 2}
  space:
    train.learning_rate: {low: 0.000001, high: 0.005, log: true}
  objective: val/neg_elbo
  trials: 2
  pruning: {after_trials: 1, after_epochs: 0}
"""


def sweep(repo: Repo, name: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return repo.run(str(BIN / "python"), "-m", "vae_mnist", "sweeps", "run", name, *args,
                    check=check)  # fmt: skip


def with_sweeps(repo: Repo) -> Repo:
    (repo.root / "sweeps.yaml").write_text(SWEEPS)
    repo.commit("the test's sweeps")
    return repo


def study(repo: Repo, name: str, storage: str | None = None) -> optuna.Study:
    url = storage or f"sqlite:///{repo.root / 'optuna.db'}"
    return optuna.create_study(study_name=name, storage=url, load_if_exists=True)


def client(repo: Repo) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(repo.env.get("MLFLOW_TRACKING_URI")
                               or f"sqlite:///{repo.root / 'mlflow.db'}")  # fmt: skip


def runs(repo: Repo, where: str) -> list[mlflow.entities.Run]:
    found = client(repo)
    experiment = found.get_experiment_by_name("vae-mnist")
    return found.search_runs([experiment.experiment_id], where, max_results=1000)


def experiments(repo: Repo) -> set[str]:
    """The names of the DVC experiments the repository holds (`dvc exp list`)."""
    listed = repo.dvc("exp", "list", "--name-only").stdout.split()
    return set(listed)


def leftovers(repo: Repo) -> list[str]:
    """Temporary experiment copies DVC left behind (beside its `run` folder of run infos)."""
    folder = repo.root / ".dvc" / "tmp" / "exps" / "standalone"
    found = folder.iterdir() if folder.is_dir() else []
    return sorted(p.name for p in found if p.name.startswith("tmp"))


# The pure parts: values, names, the recipe, where the study lives.


def test_a_searched_float_is_rounded_to_what_a_recipe_shows_and_ints_and_choices_pass() -> None:
    trial = optuna.trial.FixedTrial({"a": 0.001975103837115054, "b": 3, "c": "[512, 256]"})
    assert suggest(trial, Dimension("a", 0.0005, 0.005, log=True)) == 0.00198
    assert suggest(trial, Dimension("b", 0, 4)) == 3
    assert suggest(trial, Dimension("c", choices=([512, 256], [64]))) == [512, 256]


def test_experiment_names_and_the_best_trial_as_a_recipe_that_loads(tmp_path: Path) -> None:
    (tmp_path / "sweeps.yaml").write_text(SWEEPS.replace("trials: 2", "trials: 2\n  seeds: 2"))
    loaded = load_sweeps(tmp_path / "sweeps.yaml", REPO / "params.yaml")
    assert experiment_names(loaded["tiny"], 7, [42]) == ["tiny-7"]
    assert experiment_names(loaded["longer"], 7, [42, 43]) == ["longer-7-s42", "longer-7-s43"]
    trial = optuna.trial.create_trial(
        value=140.5,
        params={"train.learning_rate": 0.002},
        distributions={"train.learning_rate": optuna.distributions.FloatDistribution(1e-6, 1)},
        user_attrs={"params": {"train.epochs": 2, "train.learning_rate": 0.002},
                    "values": [140.0, 141.0]},
    )  # fmt: skip
    text = as_recipe(loaded["longer"], trial)
    (tmp_path / "recipes.yaml").write_text(text)
    from vae_mnist.experiments.recipes import load_recipes

    (recipe,) = load_recipes(tmp_path / "recipes.yaml", REPO / "params.yaml").values()
    assert recipe.name == "longer-best"
    assert recipe.overrides == {"train.epochs": 2, "train.learning_rate": 0.002}
    assert "val/neg_elbo 140.50 (mean of 2 seeds)" in recipe.description


def test_the_study_is_beside_a_sqlite_store_and_a_server_needs_the_team_database(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("VAE_MNIST_SWEEP_STORAGE", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}")
    assert storage_url() == f"sqlite:///{tmp_path / 'store' / 'optuna.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://user:secret@127.0.0.1:5443")
    with pytest.raises(ConfigError) as raised:
        storage_url()
    assert "export VAE_MNIST_SWEEP_STORAGE" in str(raised.value)
    assert "secret" not in str(raised.value)
    monkeypatch.setenv("VAE_MNIST_SWEEP_STORAGE", "postgresql+psycopg://sweeps:x@127.0.0.1/s")
    assert storage_url() == "postgresql+psycopg://sweeps:x@127.0.0.1/s"


def test_an_unknown_sweep_is_one_line_and_exit_2() -> None:
    result = subprocess.run(
        [str(BIN / "python"), "-m", "vae_mnist", "sweeps", "run", "nope"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: no sweep 'nope' in sweeps.yaml (there are: latent2-12ep, latent20-10ep, quick)"
    ]


# The real thing.


@pytest.mark.e2e
def test_three_trials_two_at_a_time_on_sqlite(pipeline: Repo) -> None:
    repo = with_sweeps(pipeline)
    params = (repo.root / "params.yaml").read_text()
    result = sweep(repo, "tiny", "-n", "3", "-j", "2")
    assert experiments(repo) == {"tiny-0", "tiny-1", "tiny-2"}
    assert (repo.root / "params.yaml").read_text() == params  # the trials ran in copies
    assert leftovers(repo) == []

    (parent,) = runs(repo, "tags.stage = 'sweep'")
    assert parent.info.run_name == "sweep@tiny" and parent.info.status == "FINISHED"
    trained = runs(repo, f"tags.stage = 'train' and tags.`mlflow.parentRunId` = "
                         f"'{parent.info.run_id}'")  # fmt: skip
    assert sorted(r.data.tags["dvc.exp_name"] for r in trained) == ["tiny-0", "tiny-1", "tiny-2"]
    assert all(r.info.status == "FINISHED" for r in trained)
    done = study(repo, "tiny").get_trials()
    assert [t.state for t in done] == [TrialState.COMPLETE] * 3
    for trial in done:  # each trial's value is its train run's, which trained with its params
        (run,) = [r for r in trained if r.data.tags["sweep.trial"] == str(trial.number)]
        assert run.data.params["train.learning_rate"] == str(
            trial.user_attrs["params"]["train.learning_rate"]
        )
        assert trial.value == run.data.metrics["best.val/neg_elbo"]
        assert run.data.tags["registered_model_version"].isdigit()  # each one registered
    versions = client(repo).search_model_versions("name = 'vae-mnist'")
    assert {v.run_id for v in versions} >= {r.info.run_id for r in trained}

    best = min(done, key=lambda t: t.value)
    printed = result.stdout
    assert f"best: trial {best.number}, val/neg_elbo {best.value:.2f}" in printed
    recipe = yaml.safe_load(printed.split("as a recipe for recipes.yaml:")[1])
    assert recipe["tiny-best"]["set"] == best.user_attrs["params"]
    files = {f.path for f in client(repo).list_artifacts(parent.info.run_id, "sweep")}
    shown = ("history.png", "importances.png", "parallel-coordinates.png", "best-recipe.yaml")
    assert files == {f"sweep/{name}" for name in shown}
    assert parent.data.metrics["best.val/neg_elbo"] == best.value


@pytest.mark.e2e
def test_a_pruned_trial_stops_its_training_and_leaves_no_experiment_nor_version(
    pipeline: Repo,
) -> None:
    repo = with_sweeps(pipeline)
    queued = study(repo, "longer")
    queued.enqueue_trial({"train.learning_rate": 0.002})
    queued.enqueue_trial({"train.learning_rate": 0.000001})  # far behind after its first epoch
    result = sweep(repo, "longer")
    assert "trial 1 pruned after epoch 1 (longer-1)" in result.stdout
    assert [t.state for t in study(repo, "longer").get_trials()] == [
        TrialState.COMPLETE, TrialState.PRUNED
    ]  # fmt: skip
    assert experiments(repo) == {"longer-0"}
    assert leftovers(repo) == []
    (pruned,) = runs(repo, "tags.stage = 'train' and tags.`sweep.trial` = '1'")
    assert pruned.info.status == "KILLED"
    assert [h.step for h in client(repo).get_metric_history(pruned.info.run_id,
                                                           "val/neg_elbo")] == [1]  # fmt: skip
    assert runs(repo, "tags.stage = 'evaluate' and tags.`sweep.trial` = '1'") == []
    versions = client(repo).search_model_versions("name = 'vae-mnist'")
    assert pruned.info.run_id not in {v.run_id for v in versions}


@pytest.mark.e2e
@pytest.mark.parametrize("signum", [signal.SIGTERM])
def test_an_interrupted_worker_fails_its_trial_cleanly_and_the_next_continues(
    pipeline: Repo, signum: signal.Signals
) -> None:
    repo = with_sweeps(pipeline)
    (repo.root / "sweeps.yaml").write_text(SWEEPS.replace("fixed: {train.epochs: 2}",
                                                          "fixed: {train.epochs: 4}"))  # fmt: skip
    repo.commit("longer trials, to interrupt one")
    output = repo.root.parent / "sweep-output.txt"
    with output.open("wb") as sink:
        worker = subprocess.Popen(
            [str(BIN / "python"), "-m", "vae_mnist", "sweeps", "run", "longer"], cwd=repo.root,
            env=repo.env, stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + WAIT_S
        while not any(r.info.status == "RUNNING" for r in runs(repo, "tags.stage = 'train'")):
            assert worker.poll() is None and time.monotonic() < deadline, output.read_text()
            time.sleep(0.5)
        time.sleep(2)  # a few steps into training
        worker.send_signal(signum)
        assert worker.wait(timeout=WAIT_S) == 128 + signum, output.read_text()
    text = output.read_text()
    assert f"interrupted ({signum.name})" in text and "Traceback" not in text, text
    assert "trial 0 interrupted (longer-0): marked failed" in text
    assert [t.state for t in study(repo, "longer").get_trials()] == [TrialState.FAIL]
    assert runs(repo, "attributes.status = 'RUNNING'") == []
    assert experiments(repo) == set() and leftovers(repo) == []
    (parent,) = runs(repo, "tags.stage = 'sweep'")
    assert parent.info.status == "KILLED"

    result = sweep(repo, "longer")  # the next worker continues the study
    assert result.stdout.splitlines()[0].startswith("sweep longer: 0 of 2 trials taken")
    states = [t.state for t in study(repo, "longer").get_trials()]
    assert states[0] == TrialState.FAIL and len(states) == 3
    assert set(states[1:]) <= {TrialState.COMPLETE, TrialState.PRUNED}
    assert experiments(repo) <= {"longer-1", "longer-2"} and "longer-1" in experiments(repo)
    assert runs(repo, "attributes.status = 'RUNNING'") == []
    (parent,) = runs(repo, "tags.stage = 'sweep'")  # the same parent, finished now
    assert parent.info.status == "FINISHED"


@pytest.mark.e2e
@pytest.mark.stack
def test_two_machines_share_one_study_on_the_stacks_postgresql(
    built_pipeline: Repo, team_stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two clones, each with its own worker, started separately: the study in the stack's
    PostgreSQL hands out each trial once, and every one lands under one sweep run."""
    # Its own experiment and model on the shared stack, beside the other tests' runs.
    names = "mlflow.experiment_name: sweep-test, mlflow.registered_model_name: sweep-test"
    own = f"  fixed: {{{names}}}\n"
    clones = [with_sweeps(built_pipeline.copy(tmp_path / name)) for name in ("one", "two")]
    for clone in clones:
        sweeps = clone.root / "sweeps.yaml"
        sweeps.write_text(sweeps.read_text().replace("  trials: 3\n", "  trials: 3\n" + own, 1))
        clone.commit("the sweep in its own experiment")
    for clone in clones:
        clone.env.update(team_stack.client_env())
    sink = [(tmp_path / f"{n}.txt").open("wb") for n in ("one", "two")]
    workers = [
        subprocess.Popen(
            [str(BIN / "python"), "-m", "vae_mnist", "sweeps", "run", "tiny", "-n", "3"],
            cwd=clone.root,
            env=clone.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        for clone, out in zip(clones, sink, strict=True)
    ]
    for worker, out in zip(workers, sink, strict=True):
        assert worker.wait(timeout=900) == 0, Path(out.name).read_text()
        out.close()
    storage = team_stack.client_env()["VAE_MNIST_SWEEP_STORAGE"]
    trials = optuna.load_study(study_name="tiny", storage=storage).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    ran = [experiments(clone) for clone in clones]
    assert ran[0] | ran[1] == {"tiny-0", "tiny-1", "tiny-2"} and not ran[0] & ran[1]
    assert all(ran), "each worker ran a trial"
    log_in(team_stack, monkeypatch)
    mlflow_client = mlflow.MlflowClient(team_stack.tracking_uri)
    experiment = mlflow_client.get_experiment_by_name("sweep-test")
    (parent,) = mlflow_client.search_runs(
        [experiment.experiment_id], "tags.stage = 'sweep' and tags.`sweep.name` = 'tiny'"
    )
    trained = mlflow_client.search_runs(
        [experiment.experiment_id],
        f"tags.stage = 'train' and tags.`mlflow.parentRunId` = '{parent.info.run_id}'",
    )
    assert sorted(r.data.tags["dvc.exp_name"] for r in trained) == ["tiny-0", "tiny-1", "tiny-2"]
    assert parent.info.status == "FINISHED"
    password = storage.split(":")[2].split("@")[0]
    assert parent.data.tags["sweep.storage"] == storage.replace(f"sweeps:{password}@", "")


def test_the_committed_example_sweep_is_small() -> None:
    """`make sweep S=quick` is the README's example: a few minutes on 2 cores."""
    quick = load_sweeps(REPO / "sweeps.yaml", REPO / "params.yaml")["quick"]
    assert quick.fixed["train.epochs"] <= 3 and quick.trials <= 6


@pytest.mark.stack
def test_runs_logging_the_same_new_dataset_at_once_all_succeed_on_the_server(
    team_stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two sweep workers' first trials log the same new dataset at the same moment: MLflow's
    store looks for it, then inserts it, and the later insert broke one train stage."""
    import threading
    import uuid

    import numpy as np

    from vae_mnist.tracking.runs import log_dataset

    log_in(team_stack, monkeypatch)
    mlflow.set_tracking_uri(team_stack.tracking_uri)
    experiment = mlflow.MlflowClient().create_experiment(f"race-{uuid.uuid4().hex[:8]}")
    images, labels = np.zeros((10, 28, 28), np.float32), np.zeros(10, np.uint8)
    digest = uuid.uuid4().hex[:16]  # a dataset the store has never seen
    start, failures = threading.Barrier(8), []

    def log() -> None:
        with mlflow.start_run(experiment_id=experiment):
            start.wait()
            try:
                log_dataset("train", images, labels, tmp_path / "a.npy", digest)
            except Exception as error:  # counted, whatever it is
                failures.append(str(error)[:300])

    threads = [threading.Thread(target=log) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    runs = mlflow.MlflowClient().search_runs([experiment])
    assert len(runs) == 8
    assert all(r.inputs.dataset_inputs[0].dataset.digest == digest for r in runs)


def _open_study_storage(url: str, start: Any, results: Any) -> None:
    from vae_mnist.training.trials import open_storage

    start.wait()
    try:
        open_storage(url)
        results.put("ok")
    except Exception as error:  # whatever it is, reported to the test
        results.put(f"{type(error).__name__}: {error}"[:300])


def test_workers_opening_a_new_study_database_at_once_all_get_it(tmp_path: Path) -> None:
    """Each creates Optuna's schema in a new database; the later ones must find it made (two
    sweep workers on a fresh PostgreSQL broke on it: "duplicate key ... studydirection")."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    for attempt in range(2):
        url = f"sqlite:///{tmp_path / f'optuna-{attempt}.db'}"
        start, results = context.Barrier(6), context.Queue()
        workers = [context.Process(target=_open_study_storage, args=(url, start, results))
                   for _ in range(6)]  # fmt: skip
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=120)
        assert [results.get(timeout=10) for _ in workers] == ["ok"] * 6


def test_logging_in_to_a_stack_in_process_leaves_none_of_its_variables_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every variable a stack's client gets (the sweeps' database among them) is set back after
    `access.logged_in`: one left behind sent a later test's sqlite sweep to another stack."""
    from vae_mnist_tools.stack import access, credentials

    found = credentials.files(tmp_path)
    found.folder.mkdir()
    credentials.write_private(found.password("admin"), "pw\n")
    credentials.keep_sweep_storage(found, "postgresql+psycopg://sweeps:x@127.0.0.1:1/sweeps")
    stack = Stack(tmp_path, "https://127.0.0.1:1", "", "", "", "", "", "")
    variables = stack.client_env()
    assert "VAE_MNIST_SWEEP_STORAGE" in variables
    for name in variables:
        monkeypatch.delenv(name, raising=False)
    with access.logged_in(stack):
        assert {name: os.environ[name] for name in variables} == variables
    assert not set(variables) & set(os.environ)
