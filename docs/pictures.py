"""The documentation's pictures, made from the project itself so that they stay current:
`make docs-pictures` (or `python docs/pictures.py [NAME ...]`) writes them into docs/images/.

- dag.png: the stages and what flows between them, read from DVC's own graph of dvc.yaml;
- training_curves.png: the evaluate stage's figure of the workspace's run;
- report.png: the top of `make report`'s page (REPORT_BASE, REPORT_OTHER: the sides, default HEAD
  and the workspace);
- explorer.png: `make explore` on the store's champion, a point of the plane picked;
- model.png: the champion's page in the MLflow UI (`make ui`): its model card and its alias.

They need what the pages show: a run of the pipeline (`make repro`) for the first three, the
store's registered versions for the last two, and Debian's Chromium for the screenshots. Every
server is started on 127.0.0.1 and stopped again; the pictures show no path of this machine.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "docs" / "images"
VIEW = {"width": 1280, "height": 800}
# The project's store by a relative path (the servers run in ROOT), so that no page shows where
# this machine keeps it; a store named by MLFLOW_TRACKING_URI is used as it is.
SHOWN = {"MLFLOW_TRACKING_URI": os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")}


def dag(target: Path) -> None:
    """The stages left to right by depth, each with its outs, and an arrow per dependency."""
    from dvc.repo import Repo

    with Repo(str(ROOT)) as repo:
        graph = repo.index.graph  # an edge runs from a stage to one it depends on
        stages = {s.addressing: [str(o) for o in s.outs] for s in graph.nodes}
        needs = [(b.addressing, a.addressing) for a, b in graph.edges]
    depth: dict[str, int] = {}
    while len(depth) < len(stages):
        for stage in stages:
            before = [a for a, b in needs if b == stage]
            if stage not in depth and all(a in depth for a in before):
                depth[stage] = 1 + max((depth[a] for a in before), default=-1)
    fig, ax = plt.subplots(figsize=(11, 3.2))
    where = {s: (depth[s] * 3.0, 0.0) for s in stages}
    for a, b in needs:
        (x0, _), (x1, _) = where[a], where[b]
        if depth[b] - depth[a] == 1:  # to the next stage: straight; past one: over it
            ax.annotate("", (x1 - 1.05, 0.12), (x0 + 1.05, 0.12), arrowprops={"arrowstyle": "->"})
        else:
            arc = {"arrowstyle": "->", "connectionstyle": "arc3,rad=-0.25"}
            ax.annotate("", (x1, 0.5), (x0, 0.5), arrowprops=arc)
    for stage, (x, y) in where.items():
        ax.text(x, y + 0.12, stage, ha="center", va="center", fontsize=13, weight="bold",
                bbox={"boxstyle": "round,pad=0.6", "fc": "#e8eaf6", "ec": "#3f51b5"})  # fmt: skip
        ax.text(x, y - 0.55, "\n".join(stages[stage]), ha="center", va="top", fontsize=9)
    ax.set_xlim(-1.5, max(x for x, _ in where.values()) + 1.5)
    ax.set_ylim(-1.4, 1.7)
    ax.set_axis_off()
    fig.savefig(target, dpi=100, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)


def training_curves(target: Path) -> None:
    shutil.copyfile(ROOT / "reports" / "evaluation" / "figures" / "training_curves.png", target)


def report(target: Path) -> None:
    base = os.environ.get("REPORT_BASE", "HEAD")
    others = os.environ.get("REPORT_OTHER", "workspace").split()
    python = [sys.executable, "-m", "vae_mnist", "report", "--base", base, *others]
    subprocess.run(python, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    with browser() as page:
        page.goto((ROOT / "reports" / "compare" / "index.html").as_uri())
        page.screenshot(path=str(target))


def explorer(target: Path) -> None:
    port = free_port()
    command = [sys.executable, "-m", "vae_mnist", "explore", "--port", str(port),
               "--test-images", "data/processed"]  # fmt: skip
    with server(command, port), browser() as page:
        page.goto(f"http://127.0.0.1:{port}/")
        page.wait_for_selector("body[data-ready='1']", timeout=120_000)
        plane = page.locator("canvas").first.bounding_box()
        page.mouse.click(plane["x"] + plane["width"] * 0.6, plane["y"] + plane["height"] * 0.4)
        time.sleep(2)  # the decoded digit painted beside
        page.screenshot(path=str(target))


def model(target: Path) -> None:
    import mlflow

    from vae_mnist.common.config import PARAMS_FILE, load_config
    from vae_mnist.tracking.store import tracking_uri

    name = load_config(ROOT / PARAMS_FILE).mlflow.registered_model_name
    uri = tracking_uri()
    champion = mlflow.MlflowClient(uri).get_model_version_by_alias(name, "champion").version
    port = free_port()
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
               "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    with server(command, port), browser() as page:
        page.goto(f"http://127.0.0.1:{port}/#/models/{name}/versions/{champion}")
        page.get_by_text("champion").first.wait_for(timeout=60_000)
        close = page.get_by_role("button", name="Close")  # MLflow's assistant panel, beside
        if close.count():
            close.first.click()
        time.sleep(2)
        page.screenshot(path=str(target))


PICTURES: dict[str, Callable[[Path], None]] = {
    "dag.png": dag,
    "training_curves.png": training_curves,
    "report.png": report,
    "explorer.png": explorer,
    "model.png": model,
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def server(command: list[str], port: int) -> Iterator[None]:
    """The command's server on 127.0.0.1:port, until the block ends (stopped by its PID)."""
    process = subprocess.Popen(
        command, cwd=ROOT, env={**os.environ, **SHOWN}, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{command[2]} did not start: {process.stderr.read().decode()}")
            time.sleep(0.5)
        yield
    finally:
        process.terminate()
        process.wait(timeout=30)


@contextmanager
def browser() -> Iterator:
    """A page of Debian's headless Chromium, through Playwright."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("no chromium on PATH: make browser-deps installs it")
    with sync_playwright() as p:
        chrome = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            yield chrome.new_page(viewport=VIEW)
        finally:
            chrome.close()


def main(names: list[str]) -> None:
    unknown = sorted(set(names) - set(PICTURES))
    if unknown:
        raise SystemExit(f"no picture {', '.join(unknown)} (there are: {', '.join(PICTURES)})")
    IMAGES.mkdir(parents=True, exist_ok=True)
    for name in names or PICTURES:
        PICTURES[name](IMAGES / name)
        print(f"docs/images/{name}")


if __name__ == "__main__":
    main(sys.argv[1:])
