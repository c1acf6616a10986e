"""`python -m vae_mnist.tracking {uri,ui,serve}`: the store, its UI, the champion over HTTP."""

from __future__ import annotations

import argparse
import os
import sys

from vae_mnist.config import PARAMS_FILE, load_config
from vae_mnist.errors import reports_errors
from vae_mnist.tracking.names import CHAMPION
from vae_mnist.tracking.serving import serve_command
from vae_mnist.tracking.store import UI_PORT, UI_URL_SUFFIX, experiment_id, store
from vae_mnist.urls import redact


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
    args = parser.parse_args(argv)
    uri, artifacts = store()
    if args.command == "uri":
        print(uri)
        return
    config = load_config(PARAMS_FILE)
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


if __name__ == "__main__":
    sys.exit(main())
