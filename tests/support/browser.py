"""Debian's Chromium, driven through Playwright (whose own browser download is never needed): the
browser tests' one way to open a page and see what it requested."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.paths import REPO

ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", REPO / "test-artifacts"))  # screenshots kept
CHROMIUM = ("chromium", "chromium-browser")  # Debian's name, and Ubuntu's


def chromium() -> str:
    """The system Chromium; skip (outside CI) or fail (in CI, which installs it) without one."""
    for name in CHROMIUM:
        if found := shutil.which(name):
            return found
    reason = "no chromium on PATH: the browser tests drive Debian's (apt-get install chromium)"
    if os.environ.get("CI"):
        pytest.fail(f"CI must install it: {reason}")
    pytest.skip(reason)


@contextmanager
def chromium_page(width: int = 1280, height: int = 900) -> Iterator:
    """A page of a headless Chromium; `page.requested` lists every URL it asked for."""
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        # --no-sandbox: Chromium refuses to run as root with its sandbox (CI runs as root)
        browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.requested = []
            page.on("request", lambda r: page.requested.append(r.url))
            yield page
        finally:
            browser.close()
