"""The seed-to-seed spread of a configuration: the yardstick every difference is held against.

A configuration is the params that change what it measures (RESULTS), not the seed nor the
MLflow names. Its spread is measured once (by `make reproduce`,
which trains more seeds of a version it could not rebuild bit for bit, or by `make recipe R=<name>
SEEDS=3`) and kept in reports/noise/<digest of its differences>.json, in git, so that everyone
compares against the same measurement: the reproduce verdict, the comparison report and the
results table (docs/results.md). Nothing here assumes a spread that was not measured.

A file is named by the configuration's differences from RESULTS' baseline values, so a param
added later with the value every earlier run had (its default) leaves every kept spread found,
and a renamed experiment or model moves none. KEY_VERSION changes only with that naming.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from vae_mnist.common.config import MOVED, ModelConfig
from vae_mnist.common.errors import ConfigError
from vae_mnist.common.outputs import atomic_file

NOISE_DIR = Path("reports/noise")  # in git beside the DVC outs: small, and shared
KEY_VERSION = 1
# Each param that changes results, by its name in KEY_VERSION 1, with its baseline: the value
# of the classic configuration, or for a param added later, the value every run before it had.
# A new param is listed here with that value (a test holds every params.yaml key to RESULTS,
# NOT_RESULTS or a model kind's own section); a renamed one keeps its old name (RENAMED).
# A kind's own params (model.<kind>.*) change results and have no baseline: a configuration of
# another kind never has them.
RESULTS: dict[str, str] = {
    "floats": "native",
    "data.val_size": "5000",
    "data.binarize": "none",
    "model.latent_dim": "2",
    "model.hidden_units": "[512, 256, 128]",
    "model.activation": "relu",
    "train.epochs": "12",
    "train.batch_size": "128",
    "train.learning_rate": "0.001",
    "train.lr_schedule": "constant",
    "train.lr_decay_rate": "0.95",
    "train.kl_warmup_epochs": "0",
    "train.early_stopping_patience": "0",
    "train.distribution": "none",
    "evaluate.iwae_samples": "100",
    "model.kind": "mlp",
}
RENAMED = {new: old for old, new in MOVED.items()}  # today's name -> the key's
NOT_RESULTS = ("seed", "mlflow.experiment_name", "mlflow.registered_model_name")


@dataclass(frozen=True)
class Spread:
    """Each test metric's range (largest minus smallest) over the seeds measured."""

    path: Path
    range: dict[str, float]
    seeds: list[str]


def configuration(params: Mapping[str, object]) -> dict[str, str]:
    """The params that make a configuration, as MLflow logs them (strings), by their names in
    RESULTS: every baseline, overridden by what `params` says."""
    named = {RENAMED.get(k, k): str(v) for k, v in params.items() if k not in NOT_RESULTS}
    own = tuple(f"model.{kind}." for kind in ModelConfig.kinds())
    unknown = sorted(k for k in named if k not in RESULTS and not k.startswith(own))
    if unknown:
        raise ConfigError(
            f"experiments/noise.py: {', '.join(unknown)} in neither RESULTS nor NOT_RESULTS: say "
            "whether it changes results (and its value before it existed)"
        )
    return dict(sorted({**RESULTS, **named}.items()))


def noise_file(root: Path, params: Mapping[str, object]) -> Path:
    """Where the spread of this configuration is kept: named by its differences from RESULTS."""
    differences = {k: v for k, v in configuration(params).items() if v != RESULTS.get(k)}
    text = json.dumps({"key": KEY_VERSION, "differences": differences}, sort_keys=True)
    return root / NOISE_DIR / f"{hashlib.sha256(text.encode()).hexdigest()[:16]}.json"


def read_spread(root: Path, params: Mapping[str, object]) -> Spread | None:
    """The configuration's measured spread; None where it was never measured."""
    path = noise_file(root, params)
    if not path.is_file():
        return None
    record = json.loads(path.read_text(encoding="utf-8"))
    return Spread(path, record["range"], sorted(record["runs"]))


def keep_spread(
    root: Path, params: Mapping[str, object], runs: Mapping[str, Mapping[str, float]], machine: str
) -> Spread:
    """Keep the spread of `runs` (seed -> test metrics, two seeds at least) for these params."""
    metrics = sorted(set.intersection(*(set(r) for r in runs.values())))
    spread = {
        m: max(r[m] for r in runs.values()) - min(r[m] for r in runs.values()) for m in metrics
    }
    record = {
        "key": KEY_VERSION, "params": configuration(params), "runs": runs, "range": spread,
        "machine": machine,
    }  # fmt: skip
    path = noise_file(root, params)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as staged:
        staged.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    return Spread(path, spread, sorted(runs))
