"""A sweep's trial as the train stage sees it: each epoch's validation -ELBO reported to the
Optuna study, and a stop when the study's pruner gives up on the trial.

The sweep's worker (studies.py) names the trial in TRIAL_ENV, and DVC hands its environment on
to the stage. Outside a sweep the variable is unset and Optuna is not imported.

A pruned trial ends like an interrupted stage: the train stage raises errors.Stopped, so its
MLflow run ends KILLED, nothing is registered, DVC keeps no outs and the experiment is not saved;
the trial's PRUNED_AT attribute tells the worker why the experiment failed.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from typing import Any

from vae_mnist.common.errors import ConfigError, Stopped

TRIAL_ENV = "VAE_MNIST_TRIAL"
PRUNED_AT = "pruned_at_epoch"  # trial attribute: the epoch the train stage stopped at
SQLITE_TIMEOUT_S = 60
SCHEMA_ATTEMPTS = 3
SCHEMA_RACE = ("already exists", "duplicate key", "UNIQUE constraint failed")


@dataclass(frozen=True)
class TrialRef:
    """Where a trial is (its study's storage, a SQLAlchemy URL; the study; the trial's number)
    and the sweep's pruning (None: none), which Optuna keeps in no database: each process that
    asks the pruner must make it."""

    storage: str
    study: str
    number: int
    after_trials: int | None = None
    after_epochs: int = 0

    def pruner(self) -> Any:
        # Optuna takes a second to load: only when a sweep runs
        import optuna

        if self.after_trials is None:
            return optuna.pruners.NopPruner()
        return optuna.pruners.MedianPruner(self.after_trials, self.after_epochs)

    def encode(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def decode(cls, text: str) -> TrialRef:
        try:
            return cls(**json.loads(text))
        except (ValueError, TypeError) as error:
            raise ConfigError(f"{TRIAL_ENV} does not name a sweep's trial ({error})") from None


def open_storage(url: str, **options: Any) -> Any:
    """Optuna's RDB storage at `url`; a sqlite file waits for other writers (the default 5 s is
    short when J trials report at once)."""
    # Optuna takes a second to load: only when a sweep runs
    import optuna
    import sqlalchemy.exc

    engine = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}} if url.startswith("sqlite") else {}
    attempts = SCHEMA_ATTEMPTS
    while True:
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine, **options)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError,
                sqlalchemy.exc.OperationalError) as error:  # fmt: skip
            # Two workers on a new database both create Optuna's schema (PostgreSQL: "duplicate
            # key ... pg_type"; sqlite: "table ... already exists", "UNIQUE constraint failed:
            # alembic_version..."): the later one finds it made.
            attempts -= 1
            if not any(sign in str(error) for sign in SCHEMA_RACE) or not attempts:
                raise
            time.sleep(1)


def pruning_callbacks() -> list[Any]:
    """The Keras callback that reports to the trial TRIAL_ENV names; none outside a sweep."""
    if not (text := os.environ.get(TRIAL_ENV)):
        return []
    ref = TrialRef.decode(text)
    # TensorFlow takes seconds to load: only when this runs
    import keras
    import optuna

    storage = open_storage(ref.storage)
    study = optuna.load_study(study_name=ref.study, storage=storage, pruner=ref.pruner())
    study_id = storage.get_study_id_from_name(ref.study)
    trial = optuna.trial.Trial(
        study, storage.get_trial_id_from_study_id_trial_number(study_id, ref.number)
    )

    class ReportToTrial(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            value = float((logs or {})["val_loss"])  # Keras' name for the validation -ELBO
            trial.report(value, epoch + 1)
            if trial.should_prune():
                trial.set_user_attr(PRUNED_AT, epoch + 1)
                raise Stopped(
                    f"pruned by sweep {ref.study!r} after epoch {epoch + 1}: validation -ELBO "
                    f"{value:.2f} is behind the other trials' at this epoch"
                )

    return [ReportToTrial()]
