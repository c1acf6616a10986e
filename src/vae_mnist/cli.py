"""`vae-mnist`: the one command for everything but the stages (which DVC runs: pipeline/).

Every command's work is a function of its package; this module only reads the arguments. Those
functions import TensorFlow, MLflow, DVC or Optuna, each a few seconds to load, so they are
imported inside the command that runs them: `vae-mnist --help` and a mistyped argument answer
at once. The project's tooling (`stack`, `deps`) joins through the `vae_mnist.commands` entry
points, which the library never imports by name. Exit codes: 0 done, 1 a failure the message
names, 2 a bad argument or param, 130/143 interrupted.
"""

from __future__ import annotations

import os
import sys
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

import click

from vae_mnist.common.config import PARAMS_FILE, Config, load_config
from vae_mnist.common.errors import reports_errors
from vae_mnist.common.ports import EXPLORER_PORT, LOCALHOST, SERVE_PORT, UI_PORT

PLUGINS = "vae_mnist.commands"  # entry-point group of the commands the tooling adds


def _plugins() -> dict[str, EntryPoint]:
    return {point.name: point for point in entry_points(group=PLUGINS)}


class Commands(click.Group):
    """The library's commands, and those of the entry points in PLUGINS, loaded when used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_plugins()})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if (found := super().get_command(ctx, name)) is not None:
            return found
        point = _plugins().get(name)
        return point.load() if point is not None else None


def _config() -> Config:
    """params.yaml, validated: a bad one fails before any heavy import."""
    return load_config(PARAMS_FILE)


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """vae-mnist: a reproducible DVC + MLflow pipeline for a VAE on MNIST.

    `dvc repro` (make repro) runs the pipeline; these commands compare, rebuild, search, serve
    and explore what it made.
    """


# --- experiments ---------------------------------------------------------------------------


@cli.command()
@click.argument("others", nargs=-1, metavar="[OTHER]...")
@click.option("--base", default="HEAD", show_default=True, help="the baseline side")
@click.option(
    "--out", type=click.Path(path_type=Path), default=Path("reports/compare"), show_default=True
)
def report(others: tuple[str, ...], base: str, out: Path) -> None:
    """Compare OTHER sides (default: the workspace) with BASE, against seed noise.

    A side is `workspace`, a git revision, a DVC experiment, or a registered version (3, v3,
    champion, @champion). Nothing is retrained. The page: reports/compare/index.html.
    """
    from vae_mnist.experiments.report.compare import report as compare
    from vae_mnist.experiments.report.sides import WORKSPACE

    doc, page = compare(base, list(others) or [WORKSPACE], out)
    print("\n".join(doc.summary))
    print(page)


@cli.command()
@click.argument("version")
@click.option("--seeds", type=click.IntRange(min=2), default=4, show_default=True,
              help="seeds of the noise yardstick")  # fmt: skip
@click.option("--keep", is_flag=True, help="keep the worktree, to look into")
def reproduce(version: str, seeds: int, keep: bool) -> None:
    """Rebuild a registered VERSION (3, v3, champion) from its lineage and judge it.

    Exit 0: identical or within seed noise; 1: beyond noise; 2: the lineage lacks something.
    """
    from vae_mnist.experiments.reproduce import reproduce as rebuild

    verdict = rebuild(version, seeds, keep)
    print("\n".join(verdict.lines))
    print(verdict.verdict)
    sys.exit(verdict.exit_code)


@cli.group()
def recipes() -> None:
    """Named params overrides (recipes.yaml), each a row of the results table."""


@recipes.command("list")
def recipes_list() -> None:
    """Each recipe, its params and its command."""
    from vae_mnist.experiments.recipes import listing, load_recipes

    print("\n".join(listing(load_recipes())))


SEEDS = click.option(
    "--seeds",
    type=int,
    default=1,
    show_default=True,
    help="one experiment a seed (params.yaml's and the next ones), and their mean",
)


@recipes.command("show")
@click.argument("name")
@SEEDS
def recipes_show(name: str, seeds: int) -> None:
    """Print the DVC experiment(s) a recipe runs."""
    from vae_mnist.experiments.recipes import run_recipe

    run_recipe(name, seeds, run=False)


@recipes.command("run")
@click.argument("name")
@SEEDS
def recipes_run(name: str, seeds: int) -> None:
    """Run a recipe as the DVC experiment of its name (make recipe R=<name>)."""
    from vae_mnist.experiments.recipes import run_recipe

    run_recipe(name, seeds)


@cli.group()
def sweeps() -> None:
    """Optuna searches over params (sweeps.yaml) whose trials are DVC experiments."""


@sweeps.command("list")
def sweeps_list() -> None:
    """Each sweep, checked against params.yaml's rules."""
    from vae_mnist.experiments.sweeps import listing, load_sweeps

    print("\n".join(listing(load_sweeps())))


@sweeps.command("run")
@click.argument("name")
@click.option("-n", "--trials", type=click.IntRange(min=1),
              help="the study's budget (default: the sweep's `trials`)")  # fmt: skip
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="trials at once")  # fmt: skip
def sweeps_run(name: str, trials: int | None, jobs: int) -> None:
    """Run or continue a sweep's study (make sweep S=<name>)."""
    from vae_mnist.experiments.studies import run_sweep
    from vae_mnist.experiments.sweeps import load_sweeps, named

    run_sweep(named(load_sweeps(), name), trials, jobs)


# --- tracking ------------------------------------------------------------------------------


@cli.group()
def tracking() -> None:
    """The MLflow store: where it is, its UI, and the governed moves of @champion."""


@tracking.command()
def uri() -> None:
    """Print the tracking URI the stages use."""
    from vae_mnist.tracking.store import tracking_uri

    print(tracking_uri())


@tracking.command()
@click.option("--port", type=int, default=UI_PORT, show_default=True)
def ui(port: int) -> None:
    """Serve the MLflow UI on 127.0.0.1 against the project's store (make ui)."""
    from vae_mnist.common.urls import redact
    from vae_mnist.tracking.store import tracking_uri, ui_command

    url, command = ui_command(_config().mlflow.experiment_name, port)
    print(f"MLflow UI for {redact(tracking_uri())}\n  open {url}", flush=True)
    os.execv(command[0], command)


@tracking.command()
@click.argument("version")
def promote(version: str) -> None:
    """A maintainer moves @champion to candidate VERSION, if it beats the champion."""
    from vae_mnist.tracking import registry, store
    from vae_mnist.tracking.names import CHAMPION

    served = _config().mlflow.registered_model_name
    store.require_store()
    with store.refusals("promote"):
        holder = registry.promote_candidate(served, version)
    print(f"{served}@{CHAMPION} is v{holder}")


@tracking.command()
@click.option("--why", default="rolled back by hand", show_default=True,
              help="recorded with the move")  # fmt: skip
def rollback(why: str) -> None:
    """Withdraw the champion; @champion goes back to the best of the rest."""
    from vae_mnist.tracking import registry, store
    from vae_mnist.tracking.names import CHAMPION

    served = _config().mlflow.registered_model_name
    store.require_store()
    with store.refusals("rollback"):
        withdrawn, holder = registry.rollback(served, why)
    print(f"{served} v{withdrawn} withdrawn; {served}@{CHAMPION} is v{holder}")


@tracking.command("champion-log")
def champion_log() -> None:
    """Every recorded move of @champion: when, who, from, to, why."""
    from vae_mnist.tracking import governance, store

    served = _config().mlflow.registered_model_name
    store.require_store()
    with store.refusals("champion-log"):
        for move in governance.moves(served):
            print(move.line())


# --- apps ----------------------------------------------------------------------------------

HOST = click.option(
    "--host",
    default=LOCALHOST,
    show_default=True,
    help="interface to bind; another exposes it to the network, unauthenticated: a deliberate "
    "choice, never the default",
)


@cli.command()
@HOST
@click.option("--port", type=int, default=SERVE_PORT, show_default=True)
def serve(host: str, port: int) -> None:
    """Serve models:/<name>@champion over HTTP, its files checked first (make serve)."""
    from vae_mnist.tracking.serving import serve_command

    command, env = serve_command(_config().mlflow.registered_model_name, host, port)
    os.execvpe(command[0], command, env)


@cli.command()
@click.option("--version", help="the version the page opens on: a number or an alias "
              "(default: the champion)")  # fmt: skip
@HOST
@click.option("--port", type=int, default=EXPLORER_PORT, show_default=True)
@click.option(
    "--test-images",
    type=click.Path(path_type=Path),
    help="the preprocess stage's folder, to show the test images beside the decoder's",
)
def explore(version: str | None, host: str, port: int, test_images: Path | None) -> None:
    """The latent-space explorer on the registered versions (make explore)."""
    from vae_mnist.common.tensorflow_env import quiet_tensorflow

    model_name = _config().mlflow.registered_model_name
    quiet_tensorflow()  # before TensorFlow is imported
    from vae_mnist.apps.explorer.server import explore as run

    run(model_name, version, host, port, test_images)


@reports_errors
def main(argv: list[str] | None = None) -> None:
    """Run the command `argv` names (default: the process's arguments). Click parses them; what
    a command raises is reported by `reports_errors` in one line (Click would turn an
    interruption into "Aborted!" and exit 1)."""
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        with cli.make_context("vae-mnist", args) as context:
            cli.invoke(context)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
