"""Tests of champion.py: the champion rule on plain scores, then the `champion` alias in MLflow.

First the rule on its own (which score wins: plain scores in, a version out, no MLflow); then
lineage by model digest and the alias it moves, against a real sqlite MLflow store (and once
against the team stack's server)."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.champion import (
    MODEL,
    champion,
    link,
    train_and_register,
)
from vae_mnist.common.errors import TrackingError
from vae_mnist.tracking import governance, registry
from vae_mnist.tracking.champion import ALREADY, KEPT, PROMOTED, beats, best, decision
from vae_mnist.tracking.runs import stage_run


def evaluate(sha: str, neg_elbo: float, figures: Path) -> dict[str, str]:
    with stage_run("evaluate", "lineage") as run:
        link(MODEL, sha, {"test/neg_elbo": neg_elbo, "test/kl": 5.0}, figures)
    return mlflow.MlflowClient().get_run(run.info.run_id).data.tags


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


def test_champion_moves_on_improvement_and_stays_on_a_worse_model(
    mlflow_store: str, figures: Path
) -> None:
    client = mlflow.MlflowClient(mlflow_store)
    first = train_and_register(client, "a" * 64)
    tags = evaluate("a" * 64, 150.0, figures)
    assert champion(client) == first and tags["champion.decision"] == "promoted"

    better = train_and_register(client, "b" * 64)
    tags = evaluate("b" * 64, 140.0, figures)
    assert champion(client) == better
    assert tags["champion.previous_version"] == first
    assert tags["champion.previous.test/neg_elbo"] == "150.0"

    worse = train_and_register(client, "c" * 64)
    tags = evaluate("c" * 64, 145.0, figures)
    assert champion(client) == better
    assert tags["champion.decision"] == "kept"
    assert tags["candidate.version"] == worse and tags["candidate.test/neg_elbo"] == "145.0"
    assert client.get_model_version(MODEL, worse).tags["test/neg_elbo"] == "145.0"


def test_test_metrics_and_figures_reach_the_training_run(mlflow_store: str, figures: Path) -> None:
    client = mlflow.MlflowClient(mlflow_store)
    train_and_register(client, "d" * 64)
    tags = evaluate("d" * 64, 142.0, figures)
    train_run = client.get_run(tags["train_run_id"])
    assert train_run.data.tags["stage"] == "train"
    assert train_run.data.metrics["test/neg_elbo"] == 142.0
    listed = [a.path for a in client.list_artifacts(train_run.info.run_id, "figures")]
    assert listed == ["figures/manifold.png"]


def test_a_model_no_run_trained_is_evaluated_standalone(
    mlflow_store: str, figures: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client = mlflow.MlflowClient(mlflow_store)
    train_and_register(client, "e" * 64)
    tags = evaluate("f" * 64, 130.0, figures)
    assert tags["train_run_id"] == "none"
    assert "this evaluate run stands alone" in capsys.readouterr().out
    with pytest.raises(mlflow.exceptions.MlflowException):
        client.get_model_version_by_alias(MODEL, "champion")


def test_re_evaluating_the_champion_keeps_it(mlflow_store: str, figures: Path) -> None:
    client = mlflow.MlflowClient(mlflow_store)
    only = train_and_register(client, "g" * 64)
    evaluate("g" * 64, 150.0, figures)
    tags = evaluate("g" * 64, 150.5, figures)  # e.g. more IWAE samples: slightly other numbers
    assert tags["champion.decision"] == "already champion"
    assert champion(client) == only
    assert client.get_model_version(MODEL, only).tags["test/neg_elbo"] == "150.5"


def test_versions_scored_under_the_old_tag_name_still_compete(
    mlflow_store: str, figures: Path
) -> None:
    client = mlflow.MlflowClient(mlflow_store)
    old = train_and_register(client, "h" * 64)
    client.set_model_version_tag(MODEL, old, "test.neg_elbo", "130.0")  # an older release
    client.set_registered_model_alias(MODEL, "champion", old)
    train_and_register(client, "i" * 64)
    tags = evaluate("i" * 64, 140.0, figures)
    assert tags["champion.decision"] == "kept" and champion(client) == old
    assert tags["champion.previous.test/neg_elbo"] == "130.0"


def test_every_move_of_the_alias_is_recorded_with_who_and_why(
    mlflow_store: str, figures: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")
    client = mlflow.MlflowClient(mlflow_store)
    first = train_and_register(client, "j" * 64)
    evaluate("j" * 64, 150.0, figures)
    better = train_and_register(client, "k" * 64)
    evaluate("k" * 64, 140.0, figures)
    train_and_register(client, "l" * 64)
    evaluate("l" * 64, 145.0, figures)  # kept: no move
    moves = governance.history(client, MODEL)
    assert [(m.source, m.target, m.by) for m in moves] == [
        (None, first, "alice"), (first, better, "alice")
    ]  # fmt: skip
    assert moves[0].why == f"test -ELBO 150.00 (v{first}), the first champion"
    assert moves[1].why == f"test -ELBO 140.00 (v{better}) < 150.00 (v{first})"
    assert moves[0].at < moves[1].at


def test_a_rollback_withdraws_the_champion_and_the_rule_passes_it_over(
    mlflow_store: str, figures: Path
) -> None:
    client = mlflow.MlflowClient(mlflow_store)
    first = train_and_register(client, "m" * 64)
    evaluate("m" * 64, 150.0, figures)
    with pytest.raises(TrackingError, match="is the only evaluated version"):
        registry.rollback(MODEL, "too early")
    better = train_and_register(client, "n" * 64)
    evaluate("n" * 64, 140.0, figures)
    assert registry.rollback(MODEL, "blurry digits") == (better, first)
    assert champion(client) == first
    evaluate("n" * 64, 139.0, figures)  # evaluated again, better still: it stays withdrawn
    assert champion(client) == first
    last = governance.history(client, MODEL)[-1]
    assert (last.source, last.target) == (better, first)
    assert last.why == f"rollback of v{better}: blurry digits; test -ELBO 150.00 (v{first})"
    with pytest.raises(TrackingError, match="is not governed"):
        registry.promote_candidate(MODEL, better)
