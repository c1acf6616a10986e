"""The champion rule: which evaluated model version should hold the `champion` alias.

Plain functions of the scores, with no MLflow in them, so that the rule is tested on its own and
editing it reruns only the stage that applies it (evaluate, through tracking/registry.py).
"""

from __future__ import annotations

from collections.abc import Mapping

PROMOTED, KEPT, ALREADY = "promoted", "kept", "already champion"
AWAITS = "awaits a maintainer"  # on a governed store, a candidate this user may not promote


def beats(candidate: tuple[str, float], current: tuple[str, float] | None) -> bool:
    """The rule: whether a (version, test -ELBO) takes the alias from the current holder.

    A lower test -ELBO wins; between equal scores the older (lower) version keeps it.
    """
    if current is None:
        return True
    (version, score), (held, held_score) = candidate, current
    return (score, int(version)) < (held_score, int(held))


def best(scores: Mapping[str, float]) -> str:
    """The version that beats every other one, among versions with a score (at least one)."""
    chosen: tuple[str, float] | None = None
    for entry in scores.items():
        if beats(entry, chosen):
            chosen = entry
    if chosen is None:
        raise ValueError("no scored version to choose from")
    return chosen[0]


def decision(candidate: str, holder: str, previous: str | None) -> str:
    """What one evaluation did, once the alias has settled on `holder`."""
    if holder != candidate:
        return KEPT
    return ALREADY if previous == candidate else PROMOTED
