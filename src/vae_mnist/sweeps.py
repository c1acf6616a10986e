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

import argparse
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vae_mnist.config import PARAMS_FILE, read_named, with_overrides
from vae_mnist.errors import ConfigError, reports_errors
from vae_mnist.quantities import VAL_NEG_ELBO

SWEEPS_FILE = Path("sweeps.yaml")
OBJECTIVES = (VAL_NEG_ELBO,)  # minimised; the train stage's value at its best epoch
FIELDS = {"description", "space", "fixed", "objective", "seeds", "trials", "minutes"}
REQUIRED = {"description", "space", "objective", "trials"}
RANGE_FIELDS = {"low", "high", "log"}


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
class Sweep:
    name: str
    description: str
    space: tuple[Dimension, ...]
    fixed: Mapping[str, Any]
    objective: str
    seeds: int
    trials: int
    minutes: float | None  # None: no time limit


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
    )


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


@reports_errors
def main(argv: list[str] | None = None) -> None:
    """List the sweeps of sweeps.yaml, each checked against params.yaml's rules."""
    parser = argparse.ArgumentParser(prog="python -m vae_mnist.sweeps", description=main.__doc__)
    parser.add_subparsers(dest="command", required=True).add_parser("list", help=main.__doc__)
    parser.parse_args(argv)
    for sweep in load_sweeps().values():
        budget = f"{sweep.trials} trials" + (f", {sweep.minutes:g} min" if sweep.minutes else "")
        print(f"{sweep.name}: {sweep.description}")
        print(f"  minimises {sweep.objective} over {sweep.seeds} seed(s) a trial; {budget}")
        for dimension in sweep.space:
            print(f"  {describe(dimension)}")
        for key, value in sweep.fixed.items():
            print(f"  {key} = {value}")


if __name__ == "__main__":
    sys.exit(main())
