"""The champion rule on its own: plain scores in, a version out (no MLflow)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vae_mnist.champion import ALREADY, KEPT, PROMOTED, beats, best, decision


def test_a_lower_test_neg_elbo_takes_the_alias() -> None:
    assert beats(("2", 140.0), ("1", 150.0))
    assert not beats(("2", 150.0), ("1", 140.0))


def test_on_equal_scores_the_older_version_keeps_it() -> None:
    assert not beats(("7", 140.0), ("3", 140.0))
    assert beats(("3", 140.0), ("7", 140.0))
    assert not beats(("3", 140.0), ("3", 140.0))  # a version does not beat itself


def test_versions_compare_as_numbers_not_strings() -> None:
    assert beats(("9", 140.0), ("10", 140.0))


def test_anything_beats_no_champion() -> None:
    assert beats(("1", 1e9), None)


def test_best_is_the_lowest_score_then_the_oldest() -> None:
    assert best({"1": 150.0, "2": 140.0, "3": 145.0}) == "2"
    assert best({"10": 140.0, "9": 140.0, "11": 141.0}) == "9"
    with pytest.raises(ValueError, match=r"^no scored version to choose from$"):
        best({})


@given(st.dictionaries(st.integers(1, 500).map(str), st.floats(0, 1e4), min_size=1))
def test_best_beats_every_other_version_whatever_the_order(scores: dict[str, float]) -> None:
    chosen = best(scores)
    assert all(beats((chosen, scores[chosen]), (v, s)) for v, s in scores.items() if v != chosen)
    assert best(dict(reversed(scores.items()))) == chosen


def test_decision_says_what_one_evaluation_did() -> None:
    assert decision(candidate="3", holder="3", previous="1") == PROMOTED
    assert decision(candidate="3", holder="3", previous=None) == PROMOTED
    assert decision(candidate="3", holder="1", previous="1") == KEPT
    assert decision(candidate="3", holder="3", previous="3") == ALREADY
