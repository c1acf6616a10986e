"""Sweeps: named searches over params.yaml, as data (sweeps.yaml), like the recipes.

A sweep names the params it searches (a range, on a log scale or not, or a list of choices),
the params it fixes, the metric it minimises, how many seeds each trial trains, and its budget
(trials, minutes). Everything is checked before anything runs: an unknown key, an empty range,
or a value params.yaml's own rules refuse (each end of a range, each choice) is one line naming
the sweep and the key.

The objective is a validation metric: choosing among trials by a test metric would tune the
very number the results table reports, so the test set would no longer be held out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vae_mnist.common.config import PARAMS_FILE, load_config, read_named, with_overrides
from vae_mnist.common.errors import ConfigError
from vae_mnist.common.quantities import VAL_NEG_ELBO

SWEEPS_FILE = Path("sweeps.yaml")
# Where a sweep keeps its Optuna study when not beside the sqlite MLflow store: a SQLAlchemy URL
# (the team stack's PostgreSQL; `make stack-up` prints the line).
STORAGE_ENV = "VAE_MNIST_SWEEP_STORAGE"
OBJECTIVES = (VAL_NEG_ELBO,)  # minimised; the train stage's value at its best epoch
FIELDS = {"description", "space", "fixed", "objective", "seeds", "trials", "minutes", "pruning"}
REQUIRED = {"description", "space", "objective", "trials"}
RANGE_FIELDS = {"low", "high", "log"}
PRUNING_FIELDS = {"after_trials", "after_epochs"}
PRUNING_AFTER_TRIALS = 4  # trials finished before any is pruned (the median needs a few)


@dataclass(frozen=True)
class Dimension:
    """One searched param: a range [low, high] (ints when both ends are) or a list of choices."""

    key: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    @property
    def is_int(self) -> bool:
        return isinstance(self.low, int) and isinstance(self.high, int)


@dataclass(frozen=True)
class Pruning:
    after_trials: int
    after_epochs: int


@dataclass(frozen=True)
class Sweep:
    name: str
    description: str
    space: tuple[Dimension, ...]
    fixed: Mapping[str, Any]
    objective: str
    seeds: int
    trials: int
    minutes: float | None  # None: no time limit
    # Optuna's median pruner: a trial whose validation -ELBO after an epoch is worse than the
    # median of the finished trials' after the same epoch stops, once `after_trials` trials have
    # finished and from epoch `after_epochs` + 1 on (early epochs say little, above all during
    # KL warm-up). None: no pruning.
    pruning: Pruning | None = None


def _dimension(key: str, body: Any, where: str) -> Dimension:
    if isinstance(body, list):
        if not body:
            raise ConfigError(f"{where}: {key}: an empty list of choices")
        return Dimension(key, choices=tuple(body))
    if not isinstance(body, dict) or not {"low", "high"} <= set(body) <= RANGE_FIELDS:
        raise ConfigError(
            f"{where}: {key}: must be a list of choices or a range {{low, high[, log]}}"
        )
    low, high, log = body["low"], body["high"], body.get("log", False)
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high))
    if not numbers or not isinstance(log, bool):
        raise ConfigError(f"{where}: {key}: low and high must be numbers, log true or false")
    if not low < high:
        raise ConfigError(f"{where}: {key}: an empty range (low {low} is not below high {high})")
    if log and low <= 0:
        raise ConfigError(f"{where}: {key}: a log range must start above 0 (low is {low})")
    return Dimension(key, low, high, log)


def _positive_int(body: Mapping[str, Any], field: str, default: int | None, where: str) -> int:
    value = body.get(field, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{where}: {field} must be a whole number of at least 1, not {value!r}")
    return value


def _sweep(name: str, body: Any, params: Path, where: str) -> Sweep:
    if not isinstance(body, dict):
        raise ConfigError(f"{where}: must be a mapping of {', '.join(sorted(FIELDS))}")
    if unknown := set(body) - FIELDS:
        raise ConfigError(f"{where}: unknown field {sorted(unknown)[0]!r} (known: "
                          f"{', '.join(sorted(FIELDS))})")  # fmt: skip
    if missing := REQUIRED - set(body):
        raise ConfigError(f"{where}: missing {', '.join(sorted(missing))}")
    space_body, fixed = body["space"], body.get("fixed") or {}
    if not isinstance(space_body, dict) or not space_body:
        raise ConfigError(f"{where}: space must map params.yaml keys to ranges or choices")
    if not isinstance(fixed, dict):
        raise ConfigError(f"{where}: fixed must map params.yaml keys to values")
    if both := set(space_body) & set(fixed):
        raise ConfigError(f"{where}: {sorted(both)[0]} is both searched and fixed")
    space = tuple(_dimension(key, value, where) for key, value in space_body.items())
    # Every value a trial can take, with the fixed ones, must pass params.yaml's rules.
    for dimension in space:
        ends = dimension.choices or (dimension.low, dimension.high)
        for value in ends:
            with_overrides({**fixed, dimension.key: value}, f"{where}: {dimension.key}", params)
    with_overrides(dict(fixed), f"{where}: fixed", params)
    if body["objective"] not in OBJECTIVES:
        raise ConfigError(
            f"{where}: objective {body['objective']!r} is not one of {', '.join(OBJECTIVES)} "
            "(a validation metric: the test set stays out of the choice)"
        )
    minutes = body.get("minutes")
    if minutes is not None and (
        not isinstance(minutes, int | float) or isinstance(minutes, bool) or minutes <= 0
    ):
        raise ConfigError(f"{where}: minutes must be a positive number, not {minutes!r}")
    return Sweep(
        name=name,
        description=str(body["description"]),
        space=space,
        fixed=dict(fixed),
        objective=body["objective"],
        seeds=_positive_int(body, "seeds", 1, where),
        trials=_positive_int(body, "trials", None, where),
        minutes=minutes,
        pruning=_pruning(body.get("pruning", {}), {**head_epochs(params), **fixed}, where),
    )


def head_epochs(params: Path) -> dict[str, Any]:
    return {"train.epochs": load_config(params).train.epochs}


def _pruning(body: Any, settings: Mapping[str, Any], where: str) -> Pruning | None:
    """`pruning: false`, or a mapping of after_trials and after_epochs (defaults: 4 trials, half
    the epochs)."""
    if body is False:
        return None
    if not isinstance(body, dict) or not set(body) <= PRUNING_FIELDS:
        raise ConfigError(f"{where}: pruning must be false or a mapping of "
                          f"{', '.join(sorted(PRUNING_FIELDS))}")  # fmt: skip
    epochs = settings["train.epochs"]
    return Pruning(
        after_trials=_positive_int(body, "after_trials", PRUNING_AFTER_TRIALS, where),
        after_epochs=_whole(body, "after_epochs", epochs // 2, where),
    )


def _whole(body: Mapping[str, Any], field: str, default: int, where: str) -> int:
    value = body.get(field, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"{where}: {field} must be a whole number, not {value!r}")
    return value


def load_sweeps(path: Path = SWEEPS_FILE, params: Path = PARAMS_FILE) -> dict[str, Sweep]:
    """Every sweep of sweeps.yaml, each checked against params.yaml's rules."""
    raw = read_named(path, "sweep")
    return {str(name): _sweep(str(name), body, params, f"{path}: sweep {name!r}")
            for name, body in raw.items()}  # fmt: skip


def describe(dimension: Dimension) -> str:
    if dimension.choices:
        return f"{dimension.key} in {list(dimension.choices)}"
    scale = ", log" if dimension.log else ""
    return f"{dimension.key} in [{dimension.low}, {dimension.high}{scale}]"


def listing(sweeps: Mapping[str, Sweep]) -> list[str]:
    """Each sweep as `vae-mnist sweeps list` prints it: what it searches, fixes and minimises."""
    lines = []
    for sweep in sweeps.values():
        budget = f"{sweep.trials} trials" + (f", {sweep.minutes:g} min" if sweep.minutes else "")
        lines.append(f"{sweep.name}: {sweep.description}")
        lines.append(f"  minimises {sweep.objective} over {sweep.seeds} seed(s) a trial; {budget}")
        if pruning := sweep.pruning:
            lines.append(f"  prunes from epoch {pruning.after_epochs + 1}, once "
                         f"{pruning.after_trials} trials have finished")  # fmt: skip
        lines += [f"  {describe(dimension)}" for dimension in sweep.space]
        lines += [f"  {key} = {value}" for key, value in sweep.fixed.items()]
    return lines


def named(sweeps: Mapping[str, Sweep], name: str) -> Sweep:
    if name not in sweeps:
        raise ConfigError(f"no sweep {name!r} in {SWEEPS_FILE} (there are: {', '.join(sweeps)})")
    return sweeps[name]
