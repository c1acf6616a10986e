"""`make report`'s page in Chromium, at a reader's width, with a screenshot kept."""

from __future__ import annotations

from tests.support.browser import ARTIFACTS, chromium_page
from tests.support.report import (
    out,
)
from tests.support.workspace import Repo


def test_the_page_shows_every_image_offline_in_chromium(compared: Repo) -> None:
    index = out(compared) / "index.html"
    with chromium_page(1400) as view:
        view.goto(index.as_uri())
        view.wait_for_load_state("load")
        images = view.evaluate("Array.from(document.images).map(i => [i.complete, i.naturalWidth])")
        view.screenshot(path=str(ARTIFACTS / "report.png"))
    assert len(images) > 10 and all(done and width > 0 for done, width in images)
    assert view.requested == [index.as_uri()]  # nothing but the file itself
