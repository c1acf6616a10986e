"""Who may do what on the team server: three roles, mapped onto MLflow's permissions, and users.

- reader: browses runs and models, loads and serves them (READ);
- contributor: runs the pipeline, so creates runs in the project's experiment and registers
  versions (EDIT on the experiment and on the candidates models), reads the served models;
- maintainer: all of that, and moves `@champion` (MANAGE on every registered model).

MLflow cannot let a user register versions of a model without letting them move its aliases too
(both are an update of the registered model, EDIT), so the served models are written by
maintainers only: versions are registered in `<name>-candidates`, and promoting one copies it
into `<name>` (MLflow's `copy_model_version`, its way of promoting between registered models)
and moves the alias there. The served model's tag names its candidates model, which is how a
client learns that the store is governed (tracking/governance.py).

A role is an MLflow role of the default workspace, so the server enforces it on every request;
this module only creates the roles, the users and their passwords (in 0600 files, never shown).
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from vae_mnist.common.config import load_config, project_root, with_overrides
from vae_mnist.common.errors import StackError
from vae_mnist.experiments.recipes import load_recipes
from vae_mnist_tools.stack import credentials
from vae_mnist_tools.stack.state import Stack

WORKSPACE = "default"
READER, CONTRIBUTOR, MAINTAINER = "reader", "contributor", "maintainer"
ROLES = (READER, CONTRIBUTOR, MAINTAINER)
USERNAME_PATTERN = r"^[a-z][a-z0-9._-]{0,63}$"


@dataclass(frozen=True)
class Grant:
    resource_type: str  # experiment, registered_model
    pattern: str  # an experiment id, a model name, or "*"
    permission: str  # READ, EDIT, MANAGE


def grants(role: str, experiment_id: str, served: list[str], candidates: list[str]) -> list[Grant]:
    """What `role` may do, on the project's experiment and its registered models."""
    read_all = [Grant("experiment", experiment_id, "READ"), Grant("registered_model", "*", "READ")]
    if role == READER:
        return read_all
    if role == CONTRIBUTOR:
        return [
            Grant("experiment", experiment_id, "EDIT"),
            *(Grant("registered_model", name, "READ") for name in served),
            *(Grant("registered_model", name, "EDIT") for name in candidates),
        ]
    if role == MAINTAINER:
        return [
            Grant("experiment", experiment_id, "EDIT"),
            Grant("registered_model", "*", "MANAGE"),
        ]
    raise ValueError(f"unknown role {role!r}; known: {', '.join(ROLES)}")


@contextmanager
def logged_in(stack: Stack, user: str = credentials.ADMIN) -> Iterator[None]:
    """MLflow's clients, in this process, talk to the stack's server as `user`."""
    env = stack.client_env(user)
    saved = {key: os.environ.get(key) for key in env}  # every key it sets, whatever they are
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _auth_client(stack: Stack):  # -> mlflow.server.auth.client.AuthServiceClient
    """MLflow's client of the basic-auth app's REST API (users, roles, permissions)."""
    with warnings.catch_warnings():
        # mlflow.server's import pulls in Starlette's deprecated WSGI bridge, which warns on
        # import: MLflow's concern, not the user's.
        warnings.filterwarnings("ignore", message="starlette.middleware.wsgi is deprecated")
        from mlflow.server.auth.client import AuthServiceClient  # seconds: only when used
    return AuthServiceClient(stack.tracking_uri)


def _roles(client) -> dict[str, int]:
    return {role.name: role.id for role in client.list_roles(WORKSPACE)}


@dataclass(frozen=True)
class Project:
    experiment: str  # params.yaml's mlflow.experiment_name
    served: tuple[str, ...]  # every registered model name params.yaml and the recipes name


def project() -> Project:
    """The names the project writes to, from its params.yaml and recipes.yaml."""

    root = project_root()
    params = root / "params.yaml"
    config = load_config(params)
    served = {config.mlflow.registered_model_name}
    for recipe in load_recipes(root / "recipes.yaml", params).values():
        served.add(
            with_overrides(recipe.overrides, recipe.name, params).mlflow.registered_model_name
        )
    return Project(config.mlflow.experiment_name, tuple(sorted(served)))


def govern(stack: Stack, names: Project) -> None:
    """As the admin of a new stack: the project's experiment, each served model with its
    candidates model (the tag that makes clients register there), and the three roles."""
    # MLflow takes seconds to load: the stack's other commands stay quick
    from mlflow import MlflowClient

    from vae_mnist.tracking import governance
    from vae_mnist.tracking.store import EXPERIMENT_KIND_TAG

    candidates = [governance.candidates_name(name) for name in names.served]
    with logged_in(stack):
        client = MlflowClient(stack.tracking_uri)
        experiment_id = client.create_experiment(names.experiment, tags=EXPERIMENT_KIND_TAG)
        for served, candidate in zip(names.served, candidates, strict=True):
            client.create_registered_model(served, tags={governance.CANDIDATES_TAG: candidate})
            client.create_registered_model(candidate)
        auth = _auth_client(stack)
        for role in ROLES:
            created = auth.create_role(WORKSPACE, role, description=_DESCRIPTIONS[role])
            for grant in grants(role, experiment_id, list(names.served), candidates):
                auth.add_role_permission(
                    created.id, grant.resource_type, grant.pattern, grant.permission
                )


_DESCRIPTIONS = {
    READER: "browses runs and models, loads and serves them",
    CONTRIBUTOR: "runs the pipeline and registers candidate versions",
    MAINTAINER: "also promotes a version to @champion, and rolls it back",
}


def add_user(stack: Stack, name: str, role: str) -> Path:
    """Create `name` with a new password (kept in its 0600 file, whose path is returned) and
    give it `role`."""
    # MLflow takes seconds to load: the stack's other commands stay quick
    from mlflow.exceptions import MlflowException

    if not re.match(USERNAME_PATTERN, name):
        raise StackError(
            f"user name {name!r} is not allowed: lower-case letters, digits, '.', '_' and '-', "
            "starting with a letter"
        )
    if role not in ROLES:
        raise StackError(f"role {role!r} is unknown: choose one of {', '.join(ROLES)}")
    password = credentials.new_password()
    with logged_in(stack):
        client = _auth_client(stack)
        try:
            client.create_user(name, password)
        except MlflowException as error:
            raise StackError(f"user {name} cannot be added: {_first_line(error)}") from None
        client.assign_role(name, _roles(client)[role])
    path = stack.secrets.password(name)
    credentials.write_private(path, password + "\n")
    return path


def reset_password(stack: Stack, name: str) -> Path:
    """A new password for `name`, kept in its 0600 file (returned); the old one stops working."""
    # MLflow takes seconds to load: the stack's other commands stay quick
    from mlflow.exceptions import MlflowException

    password = credentials.new_password()
    with logged_in(stack):
        try:
            _auth_client(stack).update_user_password(name, password)
        except MlflowException as error:
            raise StackError(f"user {name}: {_first_line(error)}") from None
    path = stack.secrets.password(name)
    credentials.write_private(path, password + "\n")
    return path


def remove_user(stack: Stack, name: str) -> None:
    # MLflow takes seconds to load: the stack's other commands stay quick
    from mlflow.exceptions import MlflowException

    if name == credentials.ADMIN:
        raise StackError(f"{name} is the stack's admin and cannot be removed")
    with logged_in(stack):
        try:
            _auth_client(stack).delete_user(name)
        except MlflowException as error:
            raise StackError(f"user {name}: {_first_line(error)}") from None
    stack.secrets.password(name).unlink(missing_ok=True)


def users(stack: Stack) -> dict[str, str]:
    """Every user and its role (`admin` for the admin, `none` for a user without one), by name."""
    # MLflow takes seconds to load: the stack's other commands stay quick
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request, verify_rest_response

    with logged_in(stack):
        client = _auth_client(stack)
        # after _auth_client, which imports mlflow.server with its warning silenced
        from mlflow.server.auth.routes import LIST_USERS

        creds = get_default_host_creds(stack.tracking_uri)
        answer = verify_rest_response(http_request(creds, LIST_USERS, "GET"), LIST_USERS)
        found = {}
        for user in answer.json()["users"]:
            name = user["username"]
            if user.get("is_admin"):
                found[name] = "admin"
                continue
            held = [role.name for role in client.list_user_roles(name) if role.name in ROLES]
            found[name] = ", ".join(held) or "none"
    return dict(sorted(found.items()))


def _first_line(error: BaseException) -> str:
    """The server's message, without the database error it quotes after ` Error: `."""
    text = str(error).strip()
    return text.splitlines()[0].split(" Error: ")[0][:300] if text else repr(error)
