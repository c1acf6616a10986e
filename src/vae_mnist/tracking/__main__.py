"""`python -m vae_mnist.tracking {uri,ui,serve,promote,rollback,champion-log}`: the store, its
UI, the champion over HTTP, and the governed moves of `@champion`."""

from __future__ import annotations

import argparse
import os
import sys

from vae_mnist.common.config import PARAMS_FILE, load_config
from vae_mnist.common.errors import reports_errors
from vae_mnist.common.urls import redact
from vae_mnist.tracking.names import CHAMPION
from vae_mnist.tracking.serving import serve_command
from vae_mnist.tracking.store import UI_PORT, UI_URL_SUFFIX, experiment_id, store


@reports_errors
def main(argv: list[str] | None = None) -> None:
    """`python -m vae_mnist.tracking {uri,ui,serve}`: the store the stages use, the UI on it, or
    the champion model served over HTTP."""
    parser = argparse.ArgumentParser(prog="python -m vae_mnist.tracking", description=main.__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("uri", help="print the tracking URI the stages use")
    ui = commands.add_parser("ui", help="serve the MLflow UI on 127.0.0.1 against that store")
    ui.add_argument("--port", type=int, default=UI_PORT)
    serve = commands.add_parser("serve", help=f"serve models:/<name>@{CHAMPION} over HTTP")
    serve.add_argument("--port", type=int, default=5001)
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="interface to bind; 0.0.0.0 exposes the model to the network, with no "
        "authentication: a deliberate choice (default: 127.0.0.1, this machine only)",
    )
    promote = commands.add_parser(
        "promote", help=f"a maintainer moves @{CHAMPION} to a candidate that beats the champion"
    )
    promote.add_argument("version", help="the candidate's version number")
    rollback = commands.add_parser(
        "rollback", help=f"withdraw the champion; @{CHAMPION} goes back to the best of the rest"
    )
    rollback.add_argument("--why", default="rolled back by hand", help="recorded with the move")
    commands.add_parser("champion-log", help=f"every recorded move of @{CHAMPION}: who, when, why")
    args = parser.parse_args(argv)
    uri, artifacts = store()
    if args.command == "uri":
        print(uri)
        return
    config = load_config(PARAMS_FILE)
    served = config.mlflow.registered_model_name
    if args.command in ("promote", "rollback", "champion-log"):
        _govern(args, served)
        return
    if args.command == "serve":
        command, env = serve_command(config.mlflow.registered_model_name, args.host, args.port)
        os.execvpe(command[0], command, env)
    exp_id = experiment_id(config.mlflow.experiment_name)
    url = f"http://127.0.0.1:{args.port}/#/experiments/{exp_id}{UI_URL_SUFFIX}"
    print(f"MLflow UI for {redact(uri)}\n  open {url}", flush=True)
    # the environment's own mlflow, whether or not its bin/ is on PATH
    mlflow_bin = os.path.join(os.path.dirname(sys.executable), "mlflow")
    command = [mlflow_bin, "server", "--host", "127.0.0.1", "--port", str(args.port)]
    command += ["--backend-store-uri", uri]
    if artifacts:
        command += ["--default-artifact-root", artifacts]
    os.execv(command[0], command)


def _govern(args: argparse.Namespace, served: str) -> None:
    """The champion's moves, through the store's own permissions (a governed server refuses
    them to anyone but its maintainers)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from vae_mnist.common.errors import TrackingError
    from vae_mnist.tracking import governance, registry
    from vae_mnist.tracking.store import first_line, hint, require_store, shown_uri

    require_store()
    try:
        if args.command == "promote":
            holder = registry.promote_candidate(served, args.version)
            print(f"{served}@{CHAMPION} is v{holder}")
        elif args.command == "rollback":
            withdrawn, holder = registry.rollback(served, args.why)
            print(f"{served} v{withdrawn} withdrawn; {served}@{CHAMPION} is v{holder}")
        else:
            for move in governance.history(mlflow.MlflowClient(), served):
                print(move.line())
    except MlflowException as error:
        raise TrackingError(
            f"MLflow store {shown_uri()} refused the {args.command}: {first_line(error)} "
            f"({hint(error)})"
        ) from None


if __name__ == "__main__":
    sys.exit(main())
