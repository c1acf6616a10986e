"""The explorer's speed: one decode request over HTTP, for 1 and 64 points, against the same
decoder called in-process (the floor), and the browser's share when Chromium is here.

Starts `vae-mnist explore` as `make explore` does, on the project's store (or
MLFLOW_TRACKING_URI) and a free port, and stops it by PID. Target: a decode request answers in
well under 50 ms; the page stays usable with the 10,000-point scatter drawn.

    python benchmarks/explorer_latency.py [--version champion] [--requests 300]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import requests

from vae_mnist.common.ports import free_port

SIZES = (1, 64)


def percentiles(seconds: list[float]) -> str:
    ms = np.array(seconds) * 1000
    return f"median {np.median(ms):6.2f} ms   p95 {np.percentile(ms, 95):6.2f} ms"


def points_on(plane: list[list[float]], n: int, rng: np.random.Generator) -> np.ndarray:
    """n points spread over the scatter's extent."""
    cloud = np.asarray(plane)
    low, high = cloud.min(axis=0), cloud.max(axis=0)
    return low + (high - low) * rng.random((n, 2))


def start(version: str, port: int) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "vae_mnist", "explore", "--version", version]
    command += ["--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    for line in process.stdout:
        print(f"  | {line.rstrip()}")
        if "open http" in line:
            return process
    raise SystemExit(f"the explorer did not start (exit code {process.wait()})")


def over_http(url: str, version: str, plane: list, repeats: int) -> dict[int, list[float]]:
    rng = np.random.default_rng(0)
    timings: dict[int, list[float]] = {}
    with requests.Session() as session:  # one connection, kept alive, as the page's fetch does
        for n in SIZES:
            timings[n] = []
            for i in range(repeats + 10):
                body = {"version": version, "points": points_on(plane, n, rng).tolist()}
                began = time.perf_counter()
                answer = session.post(f"{url}api/decode", json=body, timeout=10)
                elapsed = time.perf_counter() - began
                answer.raise_for_status()
                if i >= 10:  # the first ten warm the connection and the threads
                    timings[n].append(elapsed)
    return timings


def in_process(version: str, plane: list, repeats: int) -> dict[int, list[float]]:
    """The same compiled decoder, called directly: the floor under an HTTP request."""
    from vae_mnist.apps.explorer.library import Library, pixels
    from vae_mnist.common.config import load_config
    from vae_mnist.tracking.store import require_store

    require_store()
    library = Library(load_config().mlflow.registered_model_name)
    try:
        shown = library.get(version)
        rng = np.random.default_rng(0)
        timings: dict[int, list[float]] = {}
        for n in SIZES:
            timings[n] = []
            for i in range(repeats + 10):
                points = points_on(plane, n, rng)
                began = time.perf_counter()
                pixels(shown.at(points))
                if i >= 10:
                    timings[n].append(time.perf_counter() - began)
        return timings
    finally:
        library.close()


def in_browser(url: str) -> None:
    """Load to first scatter, one redraw of the scatter, and click-to-paint, in Chromium."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        print("browser: no chromium here, skipped")
        return
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=found, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        began = time.perf_counter()
        page.goto(url)
        page.wait_for_selector("body[data-ready='1']", timeout=60_000)
        loaded = time.perf_counter() - began
        redraw = page.evaluate(
            "() => { const t = performance.now(); drawScatter(state.primary); "
            "return performance.now() - t; }"
        )
        clicks = page.evaluate(
            """async () => {
                const times = [];
                for (let i = 0; i < 50; i++) {
                    const t = performance.now();
                    await decodeAt([Math.sin(i), Math.cos(i)]);
                    times.push(performance.now() - t);
                }
                times.sort((a, b) => a - b);
                return [times[25], times[47]];
            }"""
        )
        browser.close()
    print(f"browser: page to scatter {loaded * 1000:.0f} ms (10,000 points), scatter redraw "
          f"{redraw:.1f} ms, click to painted digit median {clicks[0]:.1f} ms, "
          f"p95 {clicks[1]:.1f} ms")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", default="champion")
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    process = start(args.version, port)
    try:
        shown = requests.get(f"{url}api/versions/{args.version}", timeout=60).json()
        version, plane = shown["version"], shown["points"]
        print(f"v{version}: latent_dim {shown['latent_dim']}, {len(plane)} test points")
        http = over_http(url, version, plane, args.requests)
        in_browser(url)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    floor = in_process(version, plane, args.requests)
    print(f"{args.requests} requests each, on {Path.cwd().name}'s store; CPU: {cpu_name()}")
    for n in SIZES:
        ratio = np.median(http[n]) / np.median(floor[n])
        print(f"decode {n:2d} point{'s' if n > 1 else ' '} over HTTP: {percentiles(http[n])}")
        print(f"          in-process decoder: {percentiles(floor[n])}   HTTP / in-process "
              f"{ratio:.1f}x")  # fmt: skip


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


if __name__ == "__main__":
    main()
