"""Lineage and the `champion` alias: what the evaluate stage records in the Model Registry.

Lineage is by content: the evaluate run finds the training run whose `model.sha256` tag is the
digest of the model file it evaluated (a run id written into a DVC out would change the out on
every run). The alias follows the champion rule (champion.py), applied with no lock so that it
is right on every store, a sqlite file or a server that several machines share. On a governed store
(tracking/governance.py) the version evaluated is a candidate, and only a maintainer's
promotion copies it into the served model, where the rule then moves the alias; every move is
recorded on the model, and a rollback withdraws the champion so the rule passes it over.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException

from vae_mnist.common.errors import TrackingError
from vae_mnist.common.quantities import TEST_NEG_ELBO
from vae_mnist.tracking import cards, champion, governance, names
from vae_mnist.tracking.store import first_line, model_versions, shown_uri

CONVERGE_ROUNDS = 20
# Tags that hold a measured quantity are named after it: `namespace.` + its one name.
SCORE = TEST_NEG_ELBO  # model version tag: the score the champion rule compares
LEGACY_SCORE = "test.neg_elbo"  # the same tag in stores written before quantities had one name
DECISION = "champion.decision"  # evaluate run: promoted, kept or already champion
HOLDER = "champion.version"
PREVIOUS = "champion.previous_version"
PREVIOUS_SCORE = f"champion.previous.{SCORE}"
CANDIDATE = "candidate.version"
CANDIDATE_SCORE = f"candidate.{SCORE}"


def training_run(model_sha256: str) -> str | None:
    """The latest training run, in the active run's experiment, that wrote this model file;
    recorded on the active run (`train_run_id`, or `none`)."""
    found = mlflow.MlflowClient().search_runs(
        [mlflow.active_run().info.experiment_id],
        filter_string=f"tags.`{names.MODEL_DIGEST}` = '{model_sha256}' "
        f"and tags.{names.STAGE} = 'train'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not found:
        print(
            f"note: no training run in {shown_uri()} has {names.MODEL_DIGEST} "
            f"{model_sha256[:12]}; this evaluate run stands alone (no test metrics on a "
            "training run, no champion). A model file pulled from a remote into this store has "
            "none; a stage after train that rewrites the model must log it as train does "
            "(tracking.models.log_model)"
        )
        mlflow.set_tag(names.TRAIN_RUN, names.NONE)
        return None
    run_id = found[0].info.run_id
    mlflow.set_tag(names.TRAIN_RUN, run_id)
    return run_id


def logged_model(model_sha256: str) -> str | None:
    """The id of the latest logged model, in the active run's experiment, built from this model
    file: the model whose metrics the test metrics join."""
    found = mlflow.search_logged_models(
        experiment_ids=[mlflow.active_run().info.experiment_id],
        filter_string=f"tags.`{names.MODEL_DIGEST}` = '{model_sha256}'",
        order_by=[{"field_name": "creation_timestamp", "ascending": False}],
        max_results=1,
        output_format="list",
    )
    return found[0].model_id if found else None


def log_test_results(
    metrics: dict[str, float],
    model_id: str | None,
    dataset: mlflow.entities.Dataset,
    documents: dict[str, Any],
    folders: list[Path],
) -> None:
    """The evaluate run's own record: the test metrics, linked to the logged model and the test
    set; the documents (metrics.json, per_digit.json) and the folders (figures, latent means)."""
    mlflow.log_metrics(metrics, model_id=model_id, dataset=dataset)
    for folder in folders:
        mlflow.log_artifacts(str(folder), folder.name)
    for file_name, document in documents.items():
        mlflow.log_dict(document, file_name)


def publish_test_results(
    model_name: str,
    train_run: str | None,
    metrics: dict[str, float],
    folders: list[Path],
    figures_dir: Path,
) -> None:
    """Where a reader of the training run and of the registered version looks: the training run
    gets the metrics and the folders, its version the results on its card, and the champion rule
    is applied to it. Nothing for a model that no train run of this store logged."""
    if train_run is None:
        return
    share_with_training_run(train_run, metrics, folders)
    target = governance.registration_target(model_name)
    if version := registered_version(target, train_run):
        describe_test_results(target, version, metrics, train_run, figures_dir)
        if target == model_name:
            elect_champion(model_name, version, metrics[TEST_NEG_ELBO])
        else:
            propose(model_name, target, version, metrics[TEST_NEG_ELBO])


def describe_test_results(
    model_name: str, version: str, metrics: dict[str, float], train_run: str, figures_dir: Path
) -> None:
    """Add the test results and the figures' place (the training run's copy, which
    share_with_training_run made) to the version's model card."""
    client = mlflow.MlflowClient()
    card = client.get_model_version(model_name, version).description or ""
    evaluate_run = mlflow.active_run().info.run_id
    figures = f"runs:/{train_run}/{figures_dir.name}"
    client.update_model_version(
        model_name, version, cards.with_test_results(card, evaluate_run, metrics, figures)
    )


def share_with_training_run(run_id: str, metrics: dict[str, float], folders: list[Path]) -> None:
    """Give the training run the test metrics and the folders (figures, latent means), so that
    training runs compare side by side and each registered version carries its evaluation."""
    client = mlflow.MlflowClient()
    for name, value in metrics.items():
        client.log_metric(run_id, name, value)
    for folder in folders:
        client.log_artifacts(run_id, str(folder), folder.name)


def registered_version(model_name: str, run_id: str) -> str | None:
    """The (latest) version of `model_name` that the training run registered."""
    versions = model_versions(mlflow.MlflowClient(), model_name, f"run_id = '{run_id}'")
    if not versions:
        print(f"note: training run {run_id} registered no version of {model_name}")
        return None
    return str(max(int(v.version) for v in versions))


def elect_champion(model_name: str, version: str, score: float) -> str:
    """Tag the version with its score, settle the alias by the champion rule, and record on the
    active run what this evaluation saw and did; the decision."""
    client = mlflow.MlflowClient()
    previous = champion_version(client, model_name)
    previous_score = scores(client, model_name).get(previous) if previous else None
    client.set_model_version_tag(model_name, version, SCORE, str(score))
    holder = converge(client, model_name)
    decision = champion.decision(version, holder, previous)
    _record_decision(decision, holder, previous, previous_score, version, score)
    against = "" if previous_score is None else f" against v{previous} ({previous_score:.2f})"
    print(f"champion: {model_name} v{version} (test -ELBO {score:.2f}) {decision}{against}")
    return decision


def _record_decision(
    decision: str,
    holder: str | None,
    previous: str | None,
    previous_score: float | None,
    candidate: str,
    score: float,
) -> None:
    """What one evaluation saw and did, on its own run."""
    mlflow.set_tags(
        {
            DECISION: decision,
            HOLDER: holder or names.NONE,
            PREVIOUS: previous or names.NONE,
            PREVIOUS_SCORE: names.NONE if previous_score is None else str(previous_score),
            CANDIDATE: candidate,
            CANDIDATE_SCORE: str(score),
        }
    )


def propose(served: str, candidates: str, version: str, score: float) -> str:
    """On a governed store: tag the candidate with its score and, when it beats the champion,
    promote it if this user may, else say who can; the decision (recorded on the active run)."""
    client = mlflow.MlflowClient()
    client.set_model_version_tag(candidates, version, SCORE, str(score))
    previous = champion_version(client, served)
    previous_score = scores(client, served).get(previous) if previous else None
    name = f"{candidates} v{version} (test -ELBO {score:.2f})"
    against = (
        f"the champion {served} v{previous} ({previous_score:.2f})"
        if previous is not None and previous_score is not None
        else f"no champion of {served} yet"
    )
    holder = previous
    if previous_score is not None and not score < previous_score:
        decision = champion.KEPT
        print(f"champion: {name} does not beat {against}: kept as a candidate")
    else:
        try:
            holder = promote(client, served, candidates, version)
        except MlflowException as error:
            if not governance.refused(error):
                raise
            decision = champion.AWAITS
            print(
                f"champion: {name} beats {against}; a maintainer promotes it with "
                f"`make promote V={version}` (user {governance.user()} may not)"
            )
        else:
            promoted = scores(client, served).get(holder) == score
            decision = champion.PROMOTED if promoted else champion.KEPT
            print(f"champion: {name} {decision}: {served}@{names.CHAMPION} is v{holder}")
    _record_decision(decision, holder, previous, previous_score, version, score)
    return decision


def promote(client: mlflow.MlflowClient, served: str, candidates: str, version: str) -> str:
    """Copy the candidate into the served model (once) with its tags and card, and let the rule
    move the alias among the served versions; the version that holds it."""
    source = f"{candidates} v{version}"
    copied = None
    for existing in model_versions(client, served):
        if existing.tags.get(governance.SOURCE) == source:
            copied = str(existing.version)
    if copied is None:
        candidate = client.get_model_version(candidates, version)
        copy = client.copy_model_version(f"models:/{candidates}/{version}", served)
        copied = str(copy.version)
        for key, value in {**candidate.tags, governance.SOURCE: source}.items():
            client.set_model_version_tag(served, copied, key, value)
        client.update_model_version(served, copied, candidate.description or "")
    by = client.get_model_version(served, copied).tags.get(governance.REGISTERED_BY, "unknown")
    return converge(client, served, reason=f"promoted {source} of {by}")


def promote_candidate(served: str, version: str) -> str:
    """`make promote V=<candidate>`: re-check the rule against the current champion, then
    promote; the served version that now holds the alias."""
    client = mlflow.MlflowClient()
    candidates = governance.candidates_of(client, served)
    if candidates is None:
        raise TrackingError(
            f"{served} in {shown_uri()} is not governed: its evaluate stage moves "
            f"@{names.CHAMPION} itself (promotion is for the team server's maintainers)"
        )
    try:
        candidate = client.get_model_version(candidates, version)
    except MlflowException:
        raise TrackingError(f"{candidates} has no version {version}") from None
    if (tagged := candidate.tags.get(SCORE)) is None:
        raise TrackingError(
            f"{candidates} v{version} has not been evaluated: run its evaluate stage"
        )
    score = float(tagged)
    previous = champion_version(client, served)
    previous_score = scores(client, served).get(previous) if previous else None
    if previous_score is not None and not score < previous_score:
        raise TrackingError(
            f"{candidates} v{version} (test -ELBO {score:.2f}) does not beat the champion "
            f"{served} v{previous} ({previous_score:.2f}): not promoted"
        )
    return promote(client, served, candidates, version)


def rollback(served: str, why: str) -> tuple[str, str]:
    """Withdraw the champion (tagged on its version, so the rule passes it over from now on)
    and let the rule choose among the rest: (withdrawn version, new holder)."""
    client = mlflow.MlflowClient()
    current = champion_version(client, served)
    if current is None:
        raise TrackingError(f"{served} has no @{names.CHAMPION} to roll back")
    if not set(scores(client, served)) - {current}:
        raise TrackingError(
            f"{served} v{current} is the only evaluated version: there is no earlier champion "
            "to roll back to"
        )
    withdrawn = {"by": governance.user(), "at": governance.now(), "why": why}
    client.set_model_version_tag(
        served, current, governance.WITHDRAWN, json.dumps(withdrawn, sort_keys=True)
    )
    return current, converge(client, served, reason=f"rollback of v{current}: {why}")


def scores(client: mlflow.MlflowClient, model_name: str) -> dict[str, float]:
    """Every evaluated version's score, from the versions' own tags (less the withdrawn)."""
    found: dict[str, float] = {}
    for v in model_versions(client, model_name):
        if governance.WITHDRAWN in v.tags:
            continue
        if (score := v.tags.get(SCORE, v.tags.get(LEGACY_SCORE))) is not None:
            found[str(v.version)] = float(score)
    return found


def champion_of(model_name: str) -> str | None:
    """The version that holds `@champion` in the project's store; None: none does."""
    return champion_version(mlflow.MlflowClient(), model_name)


def champion_version(client: mlflow.MlflowClient, model_name: str) -> str | None:
    try:
        return str(client.get_model_version_by_alias(model_name, names.CHAMPION).version)
    except MlflowException:
        return None


def _why(held: dict[str, float], before: str | None, chosen: str, reason: str | None) -> str:
    """The rule's numbers behind one move."""
    rule = f"test -ELBO {held[chosen]:.2f} (v{chosen})"
    if before in held:
        rule += f" < {held[before]:.2f} (v{before})"
    elif before is None:
        rule += ", the first champion"
    return f"{reason}; {rule}" if reason else rule


def converge(client: mlflow.MlflowClient, model_name: str, reason: str | None = None) -> str:
    """Point `champion` at the version the rule picks, and check again until it holds still;
    each move is recorded on the model (governance.record_move), `reason` first.

    No lock: evaluations that run at once each tag their own version first, then re-read every
    version's score and the alias after each move. Whoever writes the alias last reads again
    afterwards, and any tag written later is followed by its writer's own read, so however the
    calls interleave the alias ends where the rule says.
    """
    refused = None
    for _ in range(CONVERGE_ROUNDS):
        held = scores(client, model_name)
        chosen = champion.best(held)
        before = champion_version(client, model_name)
        if before == chosen:
            return chosen
        try:
            client.set_registered_model_alias(model_name, names.CHAMPION, chosen)
        except MlflowException as error:
            if governance.refused(error):
                raise
            # Another evaluation wrote the alias at the same moment: on PostgreSQL two first
            # writes both insert it, and one fails on the duplicate key. Read again.
            refused = error
        else:
            governance.record_move(
                client, model_name, before, chosen, _why(held, before, chosen, reason)
            )
    raise TrackingError(
        f"the {names.CHAMPION} alias of {model_name} in {shown_uri()} kept moving for "
        f"{CONVERGE_ROUNDS} rounds; run the evaluate stage again"
        + (f" (last refusal: {first_line(refused)})" if refused else "")
    )
