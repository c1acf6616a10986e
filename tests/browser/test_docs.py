"""The documentation site in Chromium: its navigation and pictures as a reader sees them."""

from __future__ import annotations

from pathlib import Path

from tests.support.browser import ARTIFACTS, chromium_page


def test_the_site_shows_its_navigation_and_pictures_in_chromium(site: Path) -> None:
    seen = {}
    with chromium_page() as view:
        for page, shot in (("index.html", "docs-home.png"), ("compare.html", "docs-compare.png")):
            view.goto((site / page).as_uri())
            view.wait_for_load_state("load")
            seen[page] = view.evaluate(
                "[Array.from(document.querySelectorAll('nav a')).map(a => a.textContent.trim()),"
                " Array.from(document.images).map(i => [i.complete, i.naturalWidth])]"
            )
            view.screenshot(path=str(ARTIFACTS / shot))
    for page, (nav, images) in seen.items():
        assert {"Comparing runs", "The team stack", "Reproducing a version"} <= set(nav), page
        assert images and all(done and width > 0 for done, width in images), page
    assert all(url.startswith("file://") for url in view.requested)  # the site fetches nothing
