"""The names MLflow records carry, shared by the code that writes them and the code that reads them.

Tags are `namespace.name`. The champion's tags, which only registry.py writes and reads, live there.
"""

from __future__ import annotations

from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from vae_mnist.common.quantities import TEST, TRAIN, VAL

STAGE = "stage"  # run tag: the DVC stage that opened the run
GIT_DIRTY = "git.dirty"  # beside MLflow's own mlflow.source.git.commit, which has no such flag
DVC_EXP_NAME, DVC_BASELINE = "DVC_EXP_NAME", "DVC_EXP_BASELINE_REV"  # what `dvc exp run` sets
DVC_TAGS = {DVC_EXP_NAME: "dvc.exp_name", "DVC_STAGE": "dvc.stage"}  # env variable -> run tag
# What a sweep's worker (studies.py) sets for the DVC experiment of a trial: its stages' runs nest
# under the sweep's run (MLflow's parent tag) and carry the sweep's name and the trial's number.
SWEEP_RUN_ENV, SWEEP_ENV, SWEEP_TRIAL_ENV = (
    "VAE_MNIST_SWEEP_RUN",
    "VAE_MNIST_SWEEP",
    "VAE_MNIST_TRIAL_NUMBER",
)
SWEEP_NAME, SWEEP_TRIAL = "sweep.name", "sweep.trial"
SWEEP_TAGS = {
    SWEEP_RUN_ENV: MLFLOW_PARENT_RUN_ID,
    SWEEP_ENV: SWEEP_NAME,
    SWEEP_TRIAL_ENV: SWEEP_TRIAL,
}
SWEEP_STORAGE = "sweep.storage"  # the sweep's run: where its Optuna study is (no password)
SWEEP_BEST_TRIAL, SWEEP_BEST_EXPERIMENTS = "sweep.best_trial", "sweep.best_experiments"
MODEL_DIGEST = "model.sha256"  # train run and model version: the sha256 of the model file
MODEL_ARTIFACT = "model"  # the train run's logged model
SERVED_FILE = ("data", "model.keras")  # the logged model's file that `mlflow models serve` loads
SERVED_DIGEST = "served.sha256"  # model version: the sha256 of that file, as logged
CHECKPOINT = "checkpoint"  # the logged model's folder that holds the DVC artifact's file
REGISTERED_VERSION = "registered_model_version"  # train run: the version it registered
TRAIN_RUN = "train_run_id"  # evaluate run: the training run of the model it evaluated
MACHINE = "machine"  # every run, and a model version: machine.id, machine.cpu, ... (machine.py)

CHAMPION = "champion"  # registry alias: the best version evaluated so far
NONE = "none"  # the value of a tag whose subject does not exist

DATASET_CONTEXT = {TRAIN: "training", VAL: "validation", TEST: "test"}


def machine_tag(field: str) -> str:
    """`machine.id`, `machine.isa`, ...: a field of the machine's fingerprint as a tag."""
    return f"{MACHINE}.{field}"


def dataset_name(split: str) -> str:
    """The split's name as an MLflow dataset, the same in every stage that logs it."""
    return f"mnist-{split}"
