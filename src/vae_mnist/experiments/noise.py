"""The seed-to-seed spread of a configuration: the yardstick every difference is held against.

A configuration is its params without the seed. Its spread is measured once (by `make reproduce`,
which trains more seeds of a version it could not rebuild bit for bit, or by `make recipe R=<name>
SEEDS=3`) and kept in reports/noise/<digest of the params>.json, in git, so that everyone
compares against the same measurement: the reproduce verdict, the comparison report and the
README's results. Nothing here assumes a spread that was not measured.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from vae_mnist.common.outputs import atomic_file

NOISE_DIR = Path("reports/noise")  # in git beside the DVC outs: small, and shared
SEED = "seed"


@dataclass(frozen=True)
class Spread:
    """Each test metric's range (largest minus smallest) over the seeds measured."""

    path: Path
    range: dict[str, float]
    seeds: list[str]


def configuration(params: Mapping[str, object]) -> dict[str, str]:
    """The params that make a configuration, as MLflow logs them (strings), the seed left out."""
    return {k: str(v) for k, v in sorted(params.items()) if k != SEED}


def noise_file(root: Path, params: Mapping[str, object]) -> Path:
    """Where the spread of this configuration is kept."""
    text = json.dumps(configuration(params), sort_keys=True)
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
    record = {"params": configuration(params), "runs": runs, "range": spread, "machine": machine}
    path = noise_file(root, params)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as staged:
        staged.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    return Spread(path, spread, sorted(runs))
