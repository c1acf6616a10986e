"""Who the team server lets in, and what each role may do: a real stack (HTTPS, MLflow's
basic-auth app, users in PostgreSQL) and the real pipeline run by each user.

The module has its own stack, governing the project's experiment and model, with one user of
each role; its tests run in file order (the contributor's candidate is what the maintainer
promotes).
"""

from __future__ import annotations

import base64
import json
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest

from tests.support.stack import log_in, processes_of, throwaway_stack
from tests.support.workspace import BIN, Repo
from vae_mnist_tools.stack import access
from vae_mnist_tools.stack.state import Stack

MODEL, CANDIDATES = "vae-mnist", "vae-mnist-candidates"


LOAD_CHAMPION = f"""
import mlflow, numpy as np
model = mlflow.pyfunc.load_model("models:/{MODEL}@champion")
print("shape", *model.predict(np.zeros((2, 28, 28), np.float32)).shape)
"""


USERS = {"rita": access.READER, "carol": access.CONTRIBUTOR, "max": access.MAINTAINER}


@pytest.fixture(scope="module")
def governed(request: pytest.FixtureRequest) -> Iterator[Stack]:
    """A stack of this module's own (its champion's history is the tests'), with its users."""
    project = access.Project("vae-mnist", (MODEL,))
    with throwaway_stack(request, project=project) as stack:
        for name, role in USERS.items():
            access.add_user(stack, name, role)
        yield stack


@pytest.fixture(scope="module")
def built(built_pipeline: Repo, tmp_path_factory: pytest.TempPathFactory) -> Repo:
    """The session's shrunk pipeline, copied: each user retrains and evaluates in a copy."""
    return built_pipeline.copy(tmp_path_factory.mktemp("access") / "repo")


def as_user(repo: Repo, stack: Stack, tmp_path: Path, user: str | None) -> Repo:
    """A copy of the pipeline whose stages talk to the stack as `user` (None: no credentials)."""
    copy = repo.copy(tmp_path / f"as-{user}")
    copy.env.update(stack.client_env(user or "admin"))
    if user is None:
        for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
            copy.env.pop(name)
    return copy


def retrain(repo: Repo) -> subprocess.CompletedProcess[str]:
    """train and evaluate again, as `dvc repro` runs them."""
    return repo.dvc("repro", "--force", "--downstream", "train", check=False)


def errors(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def versions(stack: Stack, model: str) -> list[str]:
    client = mlflow.MlflowClient(stack.tracking_uri)
    return sorted(v.version for v in client.search_model_versions(f"name = '{model}'"))


def tracking(repo: Repo, *args: str) -> subprocess.CompletedProcess[str]:
    """`vae-mnist tracking ...` (what make promote, rollback, champion-log run)."""
    return subprocess.run(
        [str(BIN / "python"), "-m", "vae_mnist", "tracking", *args],
        cwd=repo.root, env=repo.env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


@pytest.fixture(autouse=True)
def as_admin(governed: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the tests read of the store, they read as its admin."""
    log_in(governed, monkeypatch)


def test_without_credentials_a_stage_and_serve_fail_naming_the_variables(
    governed: Stack, built: Repo, tmp_path: Path
) -> None:
    repo = as_user(built, governed, tmp_path, None)
    before = repo.digests()
    result = retrain(repo)
    assert result.returncode != 0
    (line,) = errors(result)
    assert line.startswith(f"error: MLflow store {governed.tracking_uri} cannot be used: ")
    assert "HTTP 401" in line
    assert "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD are not set" in line
    assert "Traceback" not in result.stderr
    assert not (repo.root / "models" / "vae.keras").exists()  # DVC removed it; none written
    repo.dvc("checkout")
    assert repo.digests() == before  # and the last good one comes back
    assert versions(governed, CANDIDATES) == []

    served = subprocess.run(
        [str(BIN / "python"), "-m", "vae_mnist", "serve", "--port", "1"],
        cwd=repo.root, env=repo.env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert served.returncode != 0
    (line,) = errors(served)
    assert "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD are not set" in line


def test_a_wrong_password_and_an_untrusted_certificate_are_one_line_each(
    governed: Stack, built: Repo, tmp_path: Path
) -> None:
    repo = as_user(built, governed, tmp_path, "carol")
    repo.env["MLFLOW_TRACKING_PASSWORD"] = "not-carols-password"
    (line,) = errors(tracking(repo, "champion-log"))
    assert "the server refused the password of user carol" in line

    repo = as_user(built, governed, tmp_path / "no-ca", "carol")
    del repo.env["MLFLOW_TRACKING_SERVER_CERT_PATH"]
    (line,) = errors(tracking(repo, "champion-log"))
    assert "its TLS certificate is not trusted here: set MLFLOW_TRACKING_SERVER_CERT_PATH" in line


def test_a_forged_session_cookie_lets_no_one_in(governed: Stack) -> None:
    """The server authenticates every request by its user's password (HTTP Basic): no login
    cookie exists to steal or forge, and a cookie signed with another key changes nothing."""
    trusted = ssl.create_default_context(cafile=str(governed.ca))
    url = f"{governed.tracking_uri}/api/2.0/mlflow/registered-models/search"
    forged = "session=eyJ1c2VybmFtZSI6ImFkbWluIn0.Zz.forged-signature"
    request = urllib.request.Request(url, headers={"Cookie": forged})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10, context=trusted)
    assert refused.value.code == 401


def test_a_reader_browses_and_loads_but_a_pipeline_run_is_refused(
    governed: Stack, built: Repo, tmp_path: Path
) -> None:
    repo = as_user(built, governed, tmp_path, "rita")
    listed = tracking(repo, "champion-log")  # reading the model's history is allowed
    assert listed.returncode == 0, listed.stderr
    result = retrain(repo)
    assert result.returncode != 0
    (line,) = errors(result)
    assert "HTTP 403" in line and "user rita may not do this on the server" in line
    assert versions(governed, CANDIDATES) == [] and versions(governed, MODEL) == []


def test_a_contributor_registers_a_candidate_and_a_maintainer_promotes_it(
    governed: Stack, built: Repo, tmp_path: Path
) -> None:
    carol = as_user(built, governed, tmp_path, "carol")
    result = retrain(carol)
    assert result.returncode == 0, result.stderr
    assert (carol.root / "reports" / "evaluation" / "metrics.json").is_file()  # outs written
    assert versions(governed, CANDIDATES) == ["1"]
    assert versions(governed, MODEL) == []  # nothing copied, no alias moved
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("champion:")]
    assert line.startswith(f"champion: {CANDIDATES} v1 (test -ELBO ")
    assert line.endswith(
        f"beats no champion of {MODEL} yet; a maintainer promotes it with "
        "`make promote V=1` (user carol may not)"
    )

    refused = tracking(carol, "promote", "1")  # make promote, by a contributor
    assert refused.returncode != 0
    (line,) = errors(refused)
    assert "user carol may not do this on the server" in line
    assert versions(governed, MODEL) == []

    max_ = as_user(built, governed, tmp_path, "max")
    promoted = tracking(max_, "promote", "1")
    assert promoted.returncode == 0, promoted.stderr
    assert promoted.stdout.strip().splitlines()[-1] == f"{MODEL}@champion is v1"
    client = mlflow.MlflowClient(governed.tracking_uri)
    champion = client.get_model_version_by_alias(MODEL, "champion")
    assert champion.tags["candidate.source"] == f"{CANDIDATES} v1"
    assert champion.tags["registered_by"] == "carol"

    rita = as_user(built, governed, tmp_path, "rita")  # a reader loads what is served
    loaded = subprocess.run(
        [str(BIN / "python"), "-c", LOAD_CHAMPION], cwd=rita.root, env=rita.env,
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.splitlines()[-1] == "shape 2 28 28 1"

    log = tracking(carol, "champion-log")  # the audit, readable by anyone with a role
    (move,) = log.stdout.strip().splitlines()
    assert " max " in f" {move} " and "none -> v1" in move
    assert f"{CANDIDATES} v1 of carol" in move and "the first champion" in move


def test_a_maintainer_rolls_back_and_every_move_is_on_the_model(
    governed: Stack, built: Repo, tmp_path: Path
) -> None:
    """A second, better candidate promoted, then rolled back: three moves, each with its user
    and its numbers, on the model's tags (the Models page shows them)."""
    carol = as_user(built, governed, tmp_path, "carol")
    client = mlflow.MlflowClient(governed.tracking_uri)
    first = client.get_model_version(CANDIDATES, "1")
    score = float(first.tags["test/neg_elbo"])
    with pytest.MonkeyPatch.context() as as_carol:
        log_in(governed, as_carol, "carol")  # her next candidate, as if it evaluated better
        tags = {"registered_by": "carol", "test/neg_elbo": str(score - 1)}
        mlflow.register_model(first.source, CANDIDATES, tags=tags)  # the logged model again
    max_ = as_user(built, governed, tmp_path, "max")
    assert tracking(max_, "promote", "2").returncode == 0
    assert client.get_model_version_by_alias(MODEL, "champion").version == "2"

    worse = tracking(max_, "promote", "1")  # the rule is checked again: v1 no longer beats
    assert worse.returncode != 0
    (line,) = errors(worse)
    assert line.endswith(f"does not beat the champion {MODEL} v2 ({score - 1:.2f}): not promoted")

    refused = tracking(carol, "rollback")
    assert refused.returncode != 0 and "user carol may not" in errors(refused)[0]
    assert client.get_model_version_by_alias(MODEL, "champion").version == "2"

    rolled = tracking(max_, "rollback", "--why", "bad digits in review")
    assert rolled.returncode == 0, rolled.stderr
    assert rolled.stdout.strip() == f"{MODEL} v2 withdrawn; {MODEL}@champion is v1"
    withdrawn = json.loads(client.get_model_version(MODEL, "2").tags["champion.withdrawn"])
    assert withdrawn["by"] == "max" and withdrawn["why"] == "bad digits in review"

    moves = tracking(carol, "champion-log").stdout.strip().splitlines()
    assert [m.split()[2:5] for m in moves] == [
        ["none", "->", "v1"], ["v1", "->", "v2"], ["v2", "->", "v1"]
    ]  # fmt: skip
    assert all(m.split()[1] == "max" for m in moves)
    assert "rollback of v2: bad digits in review" in moves[2]
    tags = client.get_registered_model(MODEL).tags
    assert len([key for key in tags if key.startswith("champion.moved.")]) == 3


def test_user_management_from_the_command_line(governed: Stack) -> None:
    cli = [str(BIN / "python"), "-m", "vae_mnist", "stack", "user"]
    folder = ["--folder", str(governed.folder)]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*cli, *args, *folder], capture_output=True, text=True, timeout=120)

    added = run("add", "dora", "--role", "reader")
    assert added.returncode == 0, added.stderr
    password_file = governed.secrets.password("dora")
    password = password_file.read_text().strip()
    assert password not in added.stdout + added.stderr  # the path is printed, not the secret
    assert password_file.stat().st_mode & 0o777 == 0o600
    assert str(password_file) in added.stdout
    listed = run("list").stdout.split()
    assert listed == ["admin", "admin", "carol", "contributor", "dora", "reader", "max",
                      "maintainer", "rita", "reader"]  # fmt: skip

    reset = run("reset", "dora")
    assert reset.returncode == 0 and password_file.read_text().strip() != password
    token = base64.b64encode(f"dora:{password}".encode()).decode()  # the old password
    trusted = ssl.create_default_context(cafile=str(governed.ca))
    request = urllib.request.Request(
        f"{governed.tracking_uri}/api/2.0/mlflow/registered-models/search",
        headers={"Authorization": f"Basic {token}"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10, context=trusted)
    assert refused.value.code == 401

    assert run("remove", "dora").returncode == 0
    assert not password_file.exists()
    (line,) = run("remove", "dora").stderr.strip().splitlines()
    assert line.startswith("error: user dora: RESOURCE_DOES_NOT_EXIST")
    (line,) = run("add", "Dora", "--role", "reader").stderr.strip().splitlines()
    assert line.startswith("error: user name 'Dora' is not allowed")


def test_a_reader_cannot_move_the_alias_even_by_hand(governed: Stack) -> None:
    """What `curl -u rita:... -X POST .../registered-models/alias` gets."""
    password = governed.secrets.password("rita").read_text().strip()
    token = base64.b64encode(f"rita:{password}".encode()).decode()
    request = urllib.request.Request(
        f"{governed.tracking_uri}/api/2.0/mlflow/registered-models/alias",
        data=json.dumps({"name": MODEL, "alias": "champion", "version": "1"}).encode(),
        headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
        method="POST",
    )
    trusted = ssl.create_default_context(cafile=str(governed.ca))
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10, context=trusted)
    assert refused.value.code == 403


def test_no_secret_is_in_a_log_a_table_an_artifact_or_a_command_line(governed: Stack) -> None:
    """After runs as every role: the admin's and each user's password, the gateway's secret
    key and the cookie key are nowhere they could leak from."""
    import psycopg

    from vae_mnist_tools.stack.ceph import s3_client
    from vae_mnist_tools.stack.postgres import AUTH_DATABASE

    files = governed.secrets
    secrets = {name: files.password(name).read_text().strip() for name in ("admin", *USERS)}
    secrets["s3 secret key"] = governed.secret_key
    secrets["cookie key"] = files.flask_key.read_text().strip()

    places = {"logs": "\n".join(
        f.read_text(errors="replace") for f in (governed.folder / "logs").iterdir()
    )}  # fmt: skip
    places["command lines"] = "\n".join(processes_of(governed.folder))
    for database in (
        governed.postgres_uri,
        governed.postgres_uri.rsplit("/", 1)[0] + "/" + AUTH_DATABASE,
    ):
        with psycopg.connect(database) as connection:
            tables = [row[0] for row in connection.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )]  # fmt: skip
            places[database.rsplit("/", 1)[1]] = "\n".join(
                str(row) for table in tables
                for row in connection.execute(f'SELECT t::text FROM "{table}" t')
            )  # fmt: skip
    s3 = s3_client(governed.s3_endpoint, governed.access_key, governed.secret_key)
    listed = s3.list_objects_v2(Bucket=governed.artifacts_bucket).get("Contents", [])
    assert listed, "the runs logged no artifacts"
    places["artifacts"] = "\n".join(
        s3.get_object(Bucket=governed.artifacts_bucket, Key=o["Key"])["Body"]
        .read()
        .decode("latin-1")
        for o in listed
    )
    assert len(places["mlflow"]) > 1000 and "carol" in places["mlflow"]  # the runs are there
    leaks = [(what, where) for what, secret in secrets.items()
             for where, text in places.items() if secret in text]  # fmt: skip
    assert leaks == []
