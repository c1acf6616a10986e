"""Seconds until the first stage fails when the team's store goes down, against its healthy run.

Starts a throwaway team stack (PostgreSQL, Ceph's S3 gateway, mlflow server), runs the download
stage against it once healthy, then with the object store, the database and finally the server
taken down one after the other, and prints each wall time and the stage's one error line.
Target: each failure in under 15 s. Needs the stack's Debian packages (make stack-deps) and an
MNIST mirror (MNIST_MIRROR).

    python benchmarks/store_outages.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vae_mnist_tools.stack.control import DEFAULT_PORTS, down, stop_service, up

REPO = Path(__file__).resolve().parents[1]
OUTAGES = [("healthy", None), ("object store down", "radosgw"),
           ("database down", "postgres"), ("server down", "mlflow")]  # fmt: skip


def main() -> None:
    if not os.environ.get("MNIST_MIRROR"):
        sys.exit("set MNIST_MIRROR to a folder holding the four MNIST .gz files")
    folder = Path(tempfile.mkdtemp(prefix="vae-stack-"))
    stack = up(folder, ports=dict.fromkeys(DEFAULT_PORTS, 0))
    env = {**os.environ, **stack.client_env(), "PYTHONPATH": "src"}
    try:
        print(f"{'outage':<18} {'seconds':>8}  exit  first error line")
        for name, service in OUTAGES:
            if service:
                stop_service(folder, service)
            with tempfile.TemporaryDirectory() as out:
                began = time.monotonic()
                result = subprocess.run(
                    [sys.executable, "pipeline/download.py", str(Path(out) / "raw")],
                    cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
                )  # fmt: skip
                seconds = time.monotonic() - began
            errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
            line = errors[0][:150] if errors else ""
            print(f"{name:<18} {seconds:8.1f}  {result.returncode:>4}  {line}", flush=True)
    finally:
        down(folder)


if __name__ == "__main__":
    main()
