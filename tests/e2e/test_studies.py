"""`make sweep` on the shrunk pipeline with the default sqlite study: trials as DVC experiments,
pruning, an interrupted worker, the best trial as a recipe. On the team stack's PostgreSQL:
tests/stack/test_studies.py; the study's parts: tests/unit/experiments/test_studies.py."""

from __future__ import annotations

import signal
import subprocess
import time

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from tests.support.studies import SWEEPS, client, experiments, runs, with_sweeps
from tests.support.workspace import BIN, Repo

WAIT_S = 300


def sweep(repo: Repo, name: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return repo.run(str(BIN / "python"), "-m", "vae_mnist", "sweeps", "run", name, *args,
                    check=check)  # fmt: skip


def study(repo: Repo, name: str, storage: str | None = None) -> optuna.Study:
    url = storage or f"sqlite:///{repo.root / 'optuna.db'}"
    return optuna.create_study(study_name=name, storage=url, load_if_exists=True)


def leftovers(repo: Repo) -> list[str]:
    """Temporary experiment copies DVC left behind (beside its `run` folder of run infos)."""
    folder = repo.root / ".dvc" / "tmp" / "exps" / "standalone"
    found = folder.iterdir() if folder.is_dir() else []
    return sorted(p.name for p in found if p.name.startswith("tmp"))


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
