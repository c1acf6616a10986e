"""A local team stack on 127.0.0.1: PostgreSQL, Ceph's S3 gateway and an `mlflow server`.

The infrastructure a team points the pipeline at (a tracking server on a database, artifacts and
the DVC remote in object storage), started and stopped by the project for tests and for trying
it out: `python -m vae_mnist.stack up|down|status|env`, or `up(folder)` / `down(folder)` here.
"""

from vae_mnist.stack.control import DEFAULT_PORTS, default_folder, down, running, status, up
from vae_mnist.stack.state import Stack, read

__all__ = ["DEFAULT_PORTS", "Stack", "default_folder", "down", "read", "running", "status", "up"]
