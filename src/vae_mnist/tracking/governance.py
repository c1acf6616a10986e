"""A governed store: contributors register candidates, maintainers promote them to `@champion`.

MLflow grants "register a version" and "move an alias" together (both are an update of the
registered model), so on a store where not everyone may move `@champion` (the team stack,
stack/access.py) the served model `<name>` is written by maintainers only. Training registers in
`<name>-candidates`; promoting a candidate copies it into `<name>` (`copy_model_version`, MLflow's
way of promoting between registered models) and moves the alias there. The served model's
CANDIDATES tag names its candidates model: that tag is how every client learns the store is
governed, and a store without it (the sqlite default) registers into `<name>` directly.

Every move of `@champion` is recorded on the served model as a tag `champion.moved.<time>`: who,
from which version to which, and why (the rule's numbers), so the Models page shows the history
and `vae-mnist tracking champion-log` prints it.
"""

from __future__ import annotations

import datetime
import getpass
import json
import os
from dataclasses import dataclass

import mlflow
from mlflow.exceptions import MlflowException

CANDIDATES_TAG = "governance.candidates"  # served model: the name of its candidates model
CANDIDATES_SUFFIX = "-candidates"
SOURCE = "candidate.source"  # a served version: `<candidates model> v<n>` it was copied from
REGISTERED_BY = "registered_by"  # every version: the user whose training registered it
WITHDRAWN = "champion.withdrawn"  # a served version rolled back: who, when, why
MOVED_PREFIX = "champion.moved."  # served model: one tag per move of the alias


def candidates_name(served: str) -> str:
    return f"{served}{CANDIDATES_SUFFIX}"


def candidates_of(client: mlflow.MlflowClient, served: str) -> str | None:
    """The candidates model of a governed served model; None where the store is not governed
    (or the model does not exist yet)."""
    try:
        model = client.get_registered_model(served)
    except MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    return model.tags.get(CANDIDATES_TAG)


def registration_target(served: str) -> str:
    """Where a training run registers its version: the candidates model where the store is
    governed, else the served model itself."""
    return candidates_of(mlflow.MlflowClient(), served) or served


def user() -> str:
    """Who is acting: the server's user name where the store has users, else the login name."""
    return os.environ.get("MLFLOW_TRACKING_USERNAME") or getpass.getuser()


def refused(error: BaseException) -> bool:
    """The server's answer to a user without the permission (HTTP 403)."""
    text = str(error)
    return "403" in text or "PERMISSION_DENIED" in text or "Permission denied" in text


@dataclass(frozen=True)
class Move:
    at: str  # now(): in the tag's key, so moves sort by time
    by: str
    source: str | None  # the version that held the alias before; None: no champion yet
    target: str
    why: str

    @property
    def tag(self) -> str:
        return f"{MOVED_PREFIX}{self.at}"

    def value(self) -> str:
        return json.dumps(
            {"by": self.by, "from": self.source, "to": self.target, "why": self.why},
            sort_keys=True,
        )

    def line(self) -> str:
        before = f"v{self.source}" if self.source else "none"
        return f"{self.at}  {self.by:<12} {before} -> v{self.target}  {self.why}"


def now() -> str:
    """UTC to the microsecond, ISO 8601 basic format (no colons: tag keys stay portable); the
    history tags sort by it."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S.%fZ")


def record_move(
    client: mlflow.MlflowClient, served: str, source: str | None, target: str, why: str
) -> Move:
    """Write one move of the alias into the served model's history."""
    move = Move(now(), user(), source, target, why)
    client.set_registered_model_tag(served, move.tag, move.value())
    return move


def moves(served: str) -> list[Move]:
    """Every recorded move of `@champion` on the served model in the project's store."""
    return history(mlflow.MlflowClient(), served)


def history(client: mlflow.MlflowClient, served: str) -> list[Move]:
    """Every recorded move of `@champion` on the served model, oldest first."""
    tags = client.get_registered_model(served).tags
    moves = []
    for key in sorted(k for k in tags if k.startswith(MOVED_PREFIX)):
        data = json.loads(tags[key])
        moves.append(
            Move(key.removeprefix(MOVED_PREFIX), data["by"], data["from"], data["to"], data["why"])
        )
    return moves
