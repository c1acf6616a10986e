"""`vae-mnist explore` (make explore): the latent-space explorer's web server on 127.0.0.1.

Its modules and TensorFlow are imported when it starts, not when the CLI lists its commands."""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

from vae_mnist.common.errors import ExplorerError


def explore(
    model_name: str, version: str | None, host: str, port: int, test_images: Path | None
) -> None:
    """Serve the explorer until interrupted, opening on `version` (a number or an alias; None:
    the champion)."""
    # the web stack (and TensorFlow, under the app) only when the explorer starts
    import uvicorn

    from vae_mnist.apps.explorer.app import create_app
    from vae_mnist.apps.explorer.library import Library
    from vae_mnist.tracking.names import CHAMPION
    from vae_mnist.tracking.serving import NO_PICKLE
    from vae_mnist.tracking.store import require_store, shown_uri

    version = version or CHAMPION
    os.environ.update(NO_PICKLE)  # the checkpoints load in Keras' safe mode; MLflow unpickles none
    require_store()
    library = Library(model_name, test_images)
    try:
        shown = library.get(version)  # fails now, in one line, rather than on the page
        listening = listen(host, port)  # so that the URL printed answers at once
        print(
            f"explorer: {library.model_name} v{shown.record.version} "
            f"({version}) from {shown_uri()}\n  open http://{host}:{port}/",
            flush=True,
        )
        logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
        app = create_app(library, version)
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
