"""The stages' names as dvc.yaml gives them, and the files of theirs that code outside reads."""

from __future__ import annotations

# The names code outside the stages runs them by (`dvc repro <name>`, `dvc exp run ... <name>`).
DOWNLOAD, PREPROCESS, TRAIN, EVALUATE = "download", "preprocess", "train", "evaluate"
# What an experiment that must train runs, forced (`dvc exp run -f -s ...`), so that DVC's run cache
# never stands in for it: every stage after the download, whose files it checks out from the cache.
COMPUTED = (PREPROCESS, TRAIN, EVALUATE)
# What the evaluate stage's out holds, for code that reads it back (the comparison report).
METRICS_FILE = "metrics.json"  # the headline numbers: dvc.yaml's metrics, `dvc exp show` columns
PER_DIGIT_FILE = "per_digit.json"  # the same means per digit: a DVC plot, one record per digit
FIGURES_DIR = "figures"
