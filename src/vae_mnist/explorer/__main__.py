"""`python -m vae_mnist.explorer`: the latent-space explorer on http://127.0.0.1:5002."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
# MLflow draws a progress bar for each version's few small files: noise in the terminal
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

from vae_mnist.config import PARAMS_FILE, load_config
from vae_mnist.errors import reports_errors
from vae_mnist.tracking.names import CHAMPION

DEFAULT_PORT = 5002


@reports_errors
def main(argv: list[str] | None = None) -> None:
    """Serve the latent-space explorer on a registered version of the model."""
    parser = argparse.ArgumentParser(prog="python -m vae_mnist.explorer", description=main.__doc__)
    parser.add_argument(
        "--version",
        default=CHAMPION,
        help=f"the version the page opens on: a number or an alias (default: {CHAMPION})",
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="interface to bind; anything but 127.0.0.1 exposes the store's models to the "
        "network, with no authentication (default: 127.0.0.1, this machine only)",
    )
    parser.add_argument(
        "--test-images",
        type=Path,
        help="the preprocess stage's folder, to show the test images themselves beside the "
        "decoder's (optional)",
    )
    args = parser.parse_args(argv)
    config = load_config(PARAMS_FILE)  # a bad params.yaml fails before the heavy imports

    import uvicorn

    from vae_mnist.explorer.app import create_app
    from vae_mnist.explorer.library import Library
    from vae_mnist.tracking.store import require_store, shown_uri

    require_store()
    library = Library(config.mlflow.registered_model_name, args.test_images)
    try:
        shown = library.get(args.version)  # fails now, in one line, rather than on the page
        print(
            f"explorer: {library.model_name} v{shown.record.version} "
            f"({args.version}) from {shown_uri()}\n  open http://{args.host}:{args.port}/",
            flush=True,
        )
        logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
        app = create_app(library, args.version)
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    finally:
        library.close()


if __name__ == "__main__":
    sys.exit(main())
