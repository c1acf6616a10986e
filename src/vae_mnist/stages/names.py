"""The stages' names as dvc.yaml gives them, for the code that runs them from outside."""

from __future__ import annotations

# The names code outside the stages runs them by (`dvc repro <name>`, `dvc exp run ... <name>`).
DOWNLOAD, PREPROCESS, TRAIN, EVALUATE = "download", "preprocess", "train", "evaluate"
# What an experiment that must train runs, forced (`dvc exp run -f -s ...`), so that DVC's run cache
# never stands in for it: every stage after the download, whose files it checks out from the cache.
COMPUTED = (PREPROCESS, TRAIN, EVALUATE)
