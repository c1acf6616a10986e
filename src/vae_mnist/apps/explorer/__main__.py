"""`python -m vae_mnist.apps.explorer`: the latent-space explorer on http://127.0.0.1:5002."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from pathlib import Path

from vae_mnist.common.config import PARAMS_FILE, load_config
from vae_mnist.common.errors import ExplorerError, reports_errors
from vae_mnist.common.tensorflow_env import quiet_tensorflow
from vae_mnist.tracking.names import CHAMPION

DEFAULT_PORT = 5002


@reports_errors
def main(argv: list[str] | None = None) -> None:
    """Serve the latent-space explorer on a registered version of the model."""
    quiet_tensorflow()  # before TensorFlow is imported
    parser = argparse.ArgumentParser(prog="python -m vae_mnist.apps.explorer", description=main.__doc__)
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

    from vae_mnist.apps.explorer.app import create_app
    from vae_mnist.apps.explorer.library import Library
    from vae_mnist.tracking.serving import NO_PICKLE
    from vae_mnist.tracking.store import require_store, shown_uri

    os.environ.update(NO_PICKLE)  # the checkpoints load in Keras' safe mode; MLflow unpickles none
    require_store()
    library = Library(config.mlflow.registered_model_name, args.test_images)
    try:
        shown = library.get(args.version)  # fails now, in one line, rather than on the page
        listening = listen(args.host, args.port)  # so that the URL printed answers at once
        print(
            f"explorer: {library.model_name} v{shown.record.version} "
            f"({args.version}) from {shown_uri()}\n  open http://{args.host}:{args.port}/",
            flush=True,
        )
        logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
        app = create_app(library, args.version)
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        server.run(sockets=[listening])
    finally:
        library.close()


def listen(host: str, port: int) -> socket.socket:
    """A socket listening on host:port; one line if that cannot be."""
    try:
        listening = socket.create_server((host, port))
    except OSError as error:
        raise ExplorerError(
            f"cannot listen on {host}:{port}: {error.strerror} (another explorer there? "
            "make explore EXPLORE_PORT=<port> moves it)"
        ) from None
    # Answers go out as two writes (head, body): without TCP_NODELAY, which accepted sockets
    # inherit, a small body waits ~40 ms for the client's delayed ACK of the head.
    listening.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return listening


if __name__ == "__main__":
    sys.exit(main())
