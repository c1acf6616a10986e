"""Running a sweep of sweeps.yaml as an Optuna study whose trials are DVC experiments.

A trial is `dvc exp run --temp -f -s -n <sweep>-<number> -S ... preprocess train evaluate`: every
stage after the download, forced (never from DVC's run cache, so every trial trains, logs its runs
and registers its version; preprocess too, since a seed changes the split), in a temporary copy of
the workspace, so that J trials run at once and params.yaml is left as it is. Its params are HEAD's,
the sweep's fixed ones and the trial's (recipes.head_overrides). `dvc exp show` lists the trials;
their MLflow runs nest under the sweep's run (tracking/sweeps.py). With `seeds: n` a trial is n
experiments, `<sweep>-<number>-s<seed>`, and its value their mean; the pruner sees the first seed's
epochs.

The study lives in a database: a sqlite file beside the MLflow store by default; with
STORAGE_ENV set (the team stack's PostgreSQL: `make stack-up` prints the line) every clone that
runs the same sweep joins one study, and trial numbers, so experiment names, are unique across
them. The budget N is the study's: a worker asks for no trial once N are finished, pruned or
running, counted and asked under one lock for every worker (AskLock).

Interrupted (Ctrl-C, SIGTERM), a worker interrupts its experiments (their stages end KILLED and
DVC drops their copies: no experiment is saved), marks their trials FAIL and ends; the next
`make sweep` continues the study. A worker killed outright stops its heartbeat: the next worker
marks its trial FAIL after GRACE_S and runs the same params again.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import yaml
from filelock import FileLock

from vae_mnist.common.config import PARAMS_FILE, load_config, project_root
from vae_mnist.common.errors import ConfigError, Diverged, VaeMnistError
from vae_mnist.common.pipeline import DOWNLOAD, TRAIN
from vae_mnist.common.quantities import at_best
from vae_mnist.common.urls import redact
from vae_mnist.experiments.recipes import committed_params, experiment, head_overrides, yaml_value
from vae_mnist.experiments.sweeps import STORAGE_ENV, Dimension, Sweep
from vae_mnist.tracking import names
from vae_mnist.tracking import sweeps as tracked
from vae_mnist.tracking.store import shown_uri, sqlite_file, tracking_uri
from vae_mnist.training.trials import PRUNED_AT, TRIAL_ENV, TrialRef, open_storage

STUDY_FILE = "optuna.db"  # the default: beside the sqlite MLflow store
OUTPUT_DIR = Path("reports/sweeps")  # <sweep>/: figures, the best recipe, each trial's DVC log
HEARTBEAT_S, GRACE_S = 30, 120  # a RUNNING trial without a heartbeat for GRACE_S is failed
STARTUP_TRIALS = 4  # random trials before TPE models the space
MAX_RETRY = 1  # a trial whose worker died runs once more with the same params
# A trial's attributes: the params it set (fixed and searched), its experiments, each one's value.
PARAMS, EXPERIMENTS, VALUES = "params", "experiments", "values"
FAILURES_IN_A_ROW = 3  # then the cause is not the trials' params: the worker stops
DIGITS = 3  # significant digits of a searched float: what the trial trains with


class TrialFailed(VaeMnistError):
    """A trial's experiment failed for a reason of its own (its log says which)."""


class Interrupted(VaeMnistError):
    """The worker was interrupted while the trial ran."""


def storage_url() -> str:
    """Where the study lives: STORAGE_ENV, else a sqlite file beside the sqlite MLflow store."""
    if url := os.environ.get(STORAGE_ENV):
        return url
    if (database := sqlite_file(tracking_uri())) is None:
        raise ConfigError(
            f"the MLflow store is {shown_uri()}: a sweep shared through it keeps its study in "
            f"the team's database; export {STORAGE_ENV} (`make stack-up` prints the line)"
        )
    return f"sqlite:///{database.parent / STUDY_FILE}"


def suggest(trial: Any, dimension: Dimension) -> Any:
    """The trial's value of one searched param (lists among choices pass through YAML text,
    since Optuna's choices are scalars)."""
    if dimension.choices:
        shown = [c if _scalar(c) else yaml_value(c) for c in dimension.choices]
        picked = trial.suggest_categorical(dimension.key, shown)
        return dimension.choices[shown.index(picked)]
    if dimension.is_int:
        return trial.suggest_int(dimension.key, dimension.low, dimension.high, log=dimension.log)
    value = trial.suggest_float(
        dimension.key, float(dimension.low), float(dimension.high), log=dimension.log
    )
    return float(f"{value:.{DIGITS}g}")  # a recipe reads 0.00198, not 0.001975103837115054


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def experiment_names(sweep: Sweep, number: int, seeds: list[int]) -> list[str]:
    """`<sweep>-<number>`, or one `<sweep>-<number>-s<seed>` a seed when a trial has several."""
    base = f"{sweep.name}-{number}"
    return [base] if len(seeds) == 1 else [f"{base}-s{seed}" for seed in seeds]


def trial_seeds(sweep: Sweep, head: Mapping[str, Any]) -> list[int]:
    first = sweep.fixed.get("seed", head["seed"])
    return [first + i for i in range(sweep.seeds)]


def as_recipe(sweep: Sweep, trial: Any) -> str:
    """The best trial as a recipes.yaml entry, ready to paste."""
    values = trial.user_attrs.get(VALUES, [trial.value])
    seeds = f" (mean of {len(values)} seeds)" if len(values) > 1 else ""
    body = {
        f"{sweep.name}-best": {
            "description": f"Found by sweep {sweep.name} (trial {trial.number}), "
            f"{sweep.objective} {trial.value:.2f}{seeds}",
            "set": trial.user_attrs.get(PARAMS, {**sweep.fixed, **trial.params}),
        }
    }
    return yaml.safe_dump(body, sort_keys=False, width=100)


class AskLock:
    """A lock that every worker of a study takes, on any machine, from counting the trials to
    asking for the next: PostgreSQL's advisory lock on a connection of its own; a lock file
    beside a sqlite study (only this machine can reach it). Releasing it twice is harmless."""

    def __init__(self, url: str, study: str) -> None:
        self.url, self.held = url, False
        self.key = int.from_bytes(hashlib.sha256(study.encode()).digest()[:8], "big", signed=True)
        self.connection: Any = None
        database = sqlite_file(url)
        self.file = FileLock(f"{database}.ask.lock") if database is not None else None

    def acquire(self) -> None:
        if self.file is not None:
            self.file.acquire()
        elif self.url.startswith("postgresql"):
            # SQLAlchemy only for a PostgreSQL study
            import sqlalchemy

            engine = sqlalchemy.create_engine(self.url, poolclass=sqlalchemy.pool.NullPool)
            self.connection = engine.connect()
            self.connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"),
                                    {"key": self.key})  # fmt: skip
        self.held = True

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        if self.file is not None:
            self.file.release()
        elif self.connection is not None:
            self.connection.close()  # the session's advisory locks end with it
            self.connection = None


@dataclass
class Worker:
    """One `make sweep` process: J threads, each running one trial's experiments at a time."""

    sweep: Sweep
    budget: int
    jobs: int
    url: str
    root: Path
    out: Path
    head: dict[str, Any]
    workspace: dict[str, Any]
    experiment: str
    parent: str = ""
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    children: set[subprocess.Popen] = field(default_factory=set)
    asking: threading.local = field(default_factory=threading.local)  # each thread's AskLock
    failures: list[str] = field(default_factory=list)  # the trials failed since the last success

    def study(self) -> Any:
        # Optuna takes a second to load: only when a sweep runs
        import optuna
        from optuna.storages import RetryHeartbeatStaleTrialCallback

        optuna.logging.set_verbosity(optuna.logging.ERROR)  # the worker prints each trial's end
        # Heartbeats, their retries and multivariate TPE are marked experimental; this process is
        # the worker's own, and its threads would race on a catch_warnings.
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        storage = open_storage(
            self.url,
            heartbeat_interval=HEARTBEAT_S,
            grace_period=GRACE_S,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(MAX_RETRY),
        )
        sampler = optuna.samplers.TPESampler(
            n_startup_trials=STARTUP_TRIALS, multivariate=True, constant_liar=True
        )
        return optuna.create_study(
            study_name=self.sweep.name,
            storage=storage,
            direction="minimize",
            sampler=sampler,
            pruner=self.trial_ref(0).pruner(),
            load_if_exists=True,
        )

    def trial_ref(self, number: int) -> TrialRef:
        pruning = self.sweep.pruning
        return TrialRef(
            self.url, self.sweep.name, number,
            after_trials=pruning.after_trials if pruning else None,
            after_epochs=pruning.after_epochs if pruning else 0,
        )  # fmt: skip

    def taken(self, study: Any) -> int:
        """Trials that count against the budget: finished, pruned or running (a waiting one, queued
        by hand or a stale trial's retry, is the next one asked for). A trial whose worker died
        is failed first, so that it stops counting."""
        # Optuna takes a second to load: only when a sweep runs
        import optuna
        from optuna.trial import TrialState

        optuna.storages.fail_stale_trials(study)

        states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
        return len(study.get_trials(deepcopy=False, states=states))

    def run_experiment(self, name: str, overrides: Mapping[str, Any], env: dict[str, str]) -> int:
        dvc = os.path.join(os.path.dirname(sys.executable), "dvc")
        command = [dvc, *experiment(name, overrides, trained=True)[1:]]
        log = self.out / f"{name}.log"
        with log.open("w") as stream:
            process = subprocess.Popen(
                command, cwd=self.root, env=env, stdout=stream,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
            with self.lock:
                self.children.add(process)
                if self.stop.is_set():  # interrupted as it started
                    os.killpg(process.pid, signal.SIGINT)
            try:
                return process.wait()
            finally:
                with self.lock:
                    self.children.discard(process)

    def objective(self, trial: Any) -> float:
        self.asking.value.release()  # RUNNING in the study now: the next ask counts it
        params = {**self.sweep.fixed, **{d.key: suggest(trial, d) for d in self.sweep.space}}
        trial.set_user_attr(PARAMS, params)
        seeds = trial_seeds(self.sweep, self.head)
        experiments = experiment_names(self.sweep, trial.number, seeds)
        trial.set_user_attr(EXPERIMENTS, experiments)
        shown = ", ".join(f"{k}={v}" for k, v in params.items() if k not in self.sweep.fixed)
        print(f"trial {trial.number} started: {shown} ({', '.join(experiments)})", flush=True)
        values = []
        for seed, name in zip(seeds, experiments, strict=True):
            overrides = head_overrides({**params, "seed": seed}, self.workspace, self.head)
            env = {
                **os.environ,
                names.SWEEP_RUN_ENV: self.parent,
                names.SWEEP_ENV: self.sweep.name,
                names.SWEEP_TRIAL_ENV: str(trial.number),
            }
            env.pop(TRIAL_ENV, None)
            if not values:  # the pruner sees the first seed's epochs
                env[TRIAL_ENV] = self.trial_ref(trial.number).encode()
            code = self.run_experiment(name, overrides, env)
            if self.stop.is_set():
                raise Interrupted(f"trial {trial.number} interrupted ({name})")
            log = self.out / f"{name}.log"
            if code != 0 and (epoch := self.pruned_at(trial.number)) is not None:
                # Optuna takes a second to load: only when a sweep runs
                import optuna

                print(f"trial {trial.number} pruned after epoch {epoch} ({name})", flush=True)
                self.failures.clear()
                raise optuna.TrialPruned()
            if code != 0 and (error := _last_error(log)).startswith(Diverged.PREFIX):
                # An outcome of the trial's params, not a fault: it does not stop the worker.
                print(f"trial {trial.number} failed: {name}: {error}", flush=True)
                raise TrialFailed(error)
            if code != 0:
                self.failed(f"trial {trial.number} failed: {name}: {error} (log: {log})")
            value = tracked.experiment_metric(
                self.experiment, name, TRAIN, at_best(self.sweep.objective)
            )  # the value at the epoch whose weights the model keeps
            if value is None:
                self.failed(f"trial {trial.number} failed: no finished train run of {name}")
            values.append(value)
        self.failures.clear()
        trial.set_user_attr(VALUES, values)
        mean = statistics.fmean(values)
        print(f"trial {trial.number} finished: {self.sweep.objective} {mean:.2f}", flush=True)
        return mean

    def failed(self, message: str) -> NoReturn:
        print(message, flush=True)
        with self.lock:
            self.failures.append(message)
        raise TrialFailed(message)

    def pruned_at(self, number: int) -> int | None:
        """The epoch the trial's train stage stopped at on the pruner's word (None: it did not)."""
        storage = open_storage(self.url)
        study_id = storage.get_study_id_from_name(self.sweep.name)
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, number)
        return storage.get_trial_user_attrs(trial_id).get(PRUNED_AT)

    def loop(self) -> None:
        """Ask for trials and run them until the budget is taken, the time is up or a stop."""
        study = self.study()
        self.asking.value = AskLock(self.url, self.sweep.name)
        deadline = time.monotonic() + 60 * self.sweep.minutes if self.sweep.minutes else math.inf
        while not self.stop.is_set() and time.monotonic() < deadline:
            if len(self.failures) >= FAILURES_IN_A_ROW:
                raise TrialFailed(
                    f"{len(self.failures)} trials failed in a row, the last: {self.failures[-1]}; "
                    "stopped (the study keeps them failed: `make sweep` continues it)"
                )
            # Counting the trials taken and asking for one more is one step for all the
            # workers of the study, on whatever machine: else two could take the last one.
            self.asking.value.acquire()
            try:
                if self.taken(study) >= self.budget:
                    return
                study.optimize(self.objective, n_trials=1, catch=(TrialFailed,))
            except Interrupted as interrupted:
                print(f"{interrupted}: marked failed", flush=True)
                return
            finally:
                self.asking.value.release()  # if the ask failed before the trial began

    def interrupt(self) -> None:
        """Stop asking for trials and interrupt the running experiments (their stages end
        KILLED, DVC drops their temporary copies)."""
        with self.lock:
            self.stop.set()
            for process in self.children:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGINT)

    def run(self) -> None:
        """Run the threads to the end. Interrupted, the experiments are interrupted too and
        their trials marked failed before the interruption goes on."""
        failures: list[BaseException] = []
        ended = [threading.Event() for _ in range(self.jobs)]

        def guarded(done: threading.Event) -> None:
            try:
                self.loop()
            except BaseException as error:  # handed to the main thread
                failures.append(error)
                self.interrupt()
            finally:
                done.set()

        for done in ended:
            threading.Thread(target=guarded, args=(done,), daemon=True).start()

        # Each thread says it ended through an Event: Thread.join cut short by a signal marks
        # the thread stopped on Python 3.11, and a second join would return at once.
        def wait() -> None:
            for done in ended:
                while not done.wait(timeout=0.2):
                    pass

        try:
            wait()
        except KeyboardInterrupt:
            self.interrupt()
            wait()
            raise
        if failures:
            raise failures[0]


def _last_error(log: Path) -> str:
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    for prefix in ("error:", "ERROR:"):
        if found := [line for line in lines if line.startswith(prefix)]:
            return found[-1].removeprefix(prefix).strip()
    return lines[-1] if lines else "no output"


def run_sweep(sweep: Sweep, trials: int | None = None, jobs: int = 1) -> None:
    """Run (or continue) the sweep's study until its budget is taken; print the best trial as
    a recipe and log the figures to the sweep's MLflow run."""
    head = committed_params()
    if head is None:
        raise ConfigError(
            "a sweep runs DVC experiments: it needs a git checkout with params.yaml committed"
        )
    root, url = project_root(), storage_url()
    experiment = {**head, **sweep.fixed}["mlflow.experiment_name"]
    out = root / OUTPUT_DIR / sweep.name
    out.mkdir(parents=True, exist_ok=True)
    # MNIST in the DVC cache, which the trials' temporary copies check it out from.
    subprocess.run([os.path.join(os.path.dirname(sys.executable), "dvc"), "repro", DOWNLOAD],
                   cwd=root, check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    worker = Worker(
        sweep, trials or sweep.trials, jobs, url, root, out, head,
        load_config(root / PARAMS_FILE).flat(), experiment,
    )  # fmt: skip
    study = worker.study()
    worker.parent = tracked.sweep_run(experiment, sweep.name, redact(url))
    print(
        f"sweep {sweep.name}: {worker.taken(study)} of {worker.budget} trials taken, {jobs} at a "
        f"time; study in {redact(url)}; trials' logs in {out.relative_to(root)}/",
        flush=True,
    )
    interrupted = True
    try:
        worker.run()
        interrupted = False
    finally:
        summarise(worker, study, interrupted)


def summarise(worker: Worker, study: Any, interrupted: bool) -> None:
    """Print where the study stands and its best trial as a recipe; figures and the recipe to
    the sweep's folder and its MLflow run, which ends once no trial of the study runs."""
    # Optuna takes a second to load: only when a sweep runs
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    counts = {state: sum(t.state == state for t in trials) for state in TrialState}
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    shown = ", ".join(f"{n} {s.name.lower()}" for s, n in counts.items() if n)
    print(f"sweep {worker.sweep.name}: {shown or 'no trials'}", flush=True)
    files = figures(study, worker.out, worker.sweep.objective) if len(complete) >= 2 else []
    tags: dict[str, str] = {}
    best = min(complete, key=lambda t: t.value) if complete else None
    if best is not None:
        recipe = as_recipe(worker.sweep, best)
        (worker.out / "best-recipe.yaml").write_text(recipe)
        files.append(worker.out / "best-recipe.yaml")
        experiments = ",".join(best.user_attrs.get(EXPERIMENTS, []))
        tags = {names.SWEEP_BEST_TRIAL: str(best.number), names.SWEEP_BEST_EXPERIMENTS: experiments}
        print(f"best: trial {best.number}, {worker.sweep.objective} {best.value:.2f}; "
              f"as a recipe for recipes.yaml:\n\n{recipe}", flush=True)  # fmt: skip
    finished = counts[TrialState.COMPLETE] + counts[TrialState.PRUNED]
    tracked.report(worker.parent, worker.sweep.objective, best and best.value, finished, tags,
                   files)  # fmt: skip
    if not counts[TrialState.RUNNING]:
        tracked.end(worker.parent, interrupted or finished < worker.budget)


FIGURES = {  # file -> Optuna's matplotlib plot
    "history.png": "plot_optimization_history",
    "importances.png": "plot_param_importances",
    "parallel-coordinates.png": "plot_parallel_coordinate",
}


def figures(study: Any, out: Path, objective: str) -> list[Path]:
    """Optuna's optimisation history, parameter importances and parallel coordinates."""
    # matplotlib only when drawing
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # after use(): pyplot picks its backend on import
    import optuna.visualization.matplotlib as plots

    written = []
    for file, plot in FIGURES.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the plots are marked experimental
            try:
                axes = getattr(plots, plot)(study, target_name=objective)
            except (ValueError, RuntimeError) as error:  # e.g. importances of one value
                print(f"no {file}: {error}", flush=True)
                continue
        figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
        figure.set_size_inches(10, 6)
        figure.tight_layout()
        figure.savefig(out / file, dpi=100)
        plt.close(figure)
        written.append(out / file)
    return written
