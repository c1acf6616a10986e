"""The four DVC stages, one module and one function each, named as in dvc.yaml.

Each only composes: read its inputs, call the pure functions that compute, write its outputs
all-or-nothing (vae_mnist.outputs), and log to MLflow (vae_mnist.tracking).
"""

# The names code outside the stages runs them by (`dvc repro <name>`, `dvc exp run ... <name>`).
DOWNLOAD, PREPROCESS, TRAIN, EVALUATE = "download", "preprocess", "train", "evaluate"
# What an experiment that must train runs, forced (`dvc exp run -f -s ...`), so that DVC's run cache
# never stands in for it: every stage after the download, whose files it checks out from the cache.
COMPUTED = (PREPROCESS, TRAIN, EVALUATE)
