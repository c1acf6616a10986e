"""The explorer in a real browser: Debian's Chromium, driven by Playwright, on two versions that
the stages trained (briefly) and evaluated on real MNIST, so that the latent space has structure
to click through. A screenshot of the page is kept as a test artifact."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import requests

from tests.support.browser import ARTIFACTS, chromium
from tests.support.configs import override
from tests.support.data import real_mnist
from tests.support.paths import REPO
from tests.support.registered import Store, explorer, register


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    from vae_mnist.common.config import PARAMS_FILE, load_config

    chromium()  # before the training, which the test would not use without a browser
    mirror = real_mnist()
    if not mirror.is_dir():
        pytest.skip("MNIST_MIRROR is not a folder of the MNIST files (CI sets it)")
    quick = override(
        load_config(REPO / PARAMS_FILE),
        {"model.mlp.hidden_units": [64], "train.epochs": 1, "evaluate.iwae_samples": 2},
    )
    folder = tmp_path_factory.mktemp("explorer-browser")
    return register(folder, mirror, [quick, override(quick, {"seed": 7})])


@pytest.fixture(scope="module")
def browser(store: Store) -> Iterator:
    """One explorer process and one Chromium for the module: each test opens its own page."""
    from playwright.sync_api import sync_playwright

    with explorer(store, "--test-images", str(store.processed)) as running, sync_playwright() as p:
        # --no-sandbox: Chromium refuses to run as root with its sandbox (CI runs as root)
        chrome = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        chrome.running = running
        try:
            yield chrome
        finally:
            chrome.close()


@pytest.fixture
def page(browser) -> Iterator:
    page = browser.new_page(viewport={"width": 1280, "height": 860})
    try:
        page.errors = []
        page.on("pageerror", lambda error: page.errors.append(str(error)))
        page.goto(browser.running.url)
        page.wait_for_selector("body[data-ready='1']", timeout=60_000)
        page.running = browser.running
        yield page
    finally:
        page.close()


def pixels(page, selector: str) -> np.ndarray:
    """A canvas's RGBA pixels, as the browser drew them."""
    data = page.evaluate(
        """(selector) => {
            const c = document.querySelector(selector);
            return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data);
        }""",
        selector,
    )
    return np.array(data, np.uint8).reshape(-1, 4)


def ink(rgba: np.ndarray) -> np.ndarray:
    """0 (white) .. 1 (black) per pixel of a painted digit."""
    return (255 - rgba[:, 0].astype(float)) / 255 * (rgba[:, 3] > 0)


def click(page, fx: float, fy: float, shift: bool = False) -> None:
    """Click the plane at a fraction of its width and height."""
    box = page.locator("#plane").bounding_box()
    if shift:
        page.keyboard.down("Shift")
    page.mouse.click(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
    if shift:
        page.keyboard.up("Shift")


def painted(page, n: int) -> None:
    page.wait_for_selector(f"#decoded[data-painted='{n}']", timeout=10_000)


def paint_in(page, b64: str) -> str:
    """How the page paints these image bytes, for comparing with what it shows."""
    return page.evaluate(
        """(b64) => { const c = document.createElement('canvas'); c.width = 28; c.height = 28;
                      paint(c, b64); return c.toDataURL(); }""",
        b64,
    )


def test_clicks_on_the_plane_show_the_decoder_s_digits_and_a_second_version_beside(
    page, store: Store
) -> None:
    # the scatter: the 10,000 test images' latent means, drawn on the plane
    assert (pixels(page, "#plane")[:, 3] > 0).sum() > 20_000
    assert not ink(pixels(page, "#decoded")).any()  # nothing decoded before a click

    click(page, 0.35, 0.4)
    painted(page, 1)
    first = ink(pixels(page, "#decoded"))
    point = [float(x) for x in page.get_attribute("#decoded", "data-point").split(",")]
    version = page.get_attribute("#decoded", "data-version")
    # what the page shows is the server's decoding of the point clicked
    served = requests.post(
        f"{page.running.url}api/decode", json={"version": version, "points": [point]}, timeout=10
    ).json()
    assert page.evaluate("() => document.getElementById('decoded').toDataURL()") == paint_in(
        page, served["images"][0]
    )
    assert first.sum() > 20  # a digit's worth of ink

    click(page, 0.7, 0.65)
    painted(page, 2)
    second = ink(pixels(page, "#decoded"))
    assert np.abs(second - first).mean() > 0.02  # another digit

    # a drag: the image follows the pointer, and the last point is the last decoded
    box = page.locator("#plane").bounding_box()
    page.mouse.move(box["x"] + 0.3 * box["width"], box["y"] + 0.5 * box["height"])
    page.mouse.down()
    for step in range(1, 11):
        x = box["x"] + (0.3 + 0.04 * step) * box["width"]
        page.mouse.move(x, box["y"] + 0.5 * box["height"])
    page.mouse.up()
    page.wait_for_function(  # the last point decoded lies under the pointer (within 2 px)
        """() => { const p = document.getElementById('decoded').dataset.point;
                   const [x] = toCanvas(p.split(',').map(Number));
                   return Math.abs(x - 0.7 * document.getElementById('plane').width) < 2; }""",
        timeout=10_000,
    )
    assert int(page.get_attribute("#decoded", "data-painted")) >= 4

    # two test images, picked by shift-click: the strip between them, with the images themselves
    click(page, 0.3, 0.3, shift=True)
    click(page, 0.7, 0.7, shift=True)
    page.wait_for_function(
        "() => document.querySelectorAll('#strips .strip canvas').length === 12", timeout=10_000
    )
    a, b = (int(page.input_value(f"#{name}")) for name in "ab")
    assert a != b

    # the second version beside the first, for the same point
    other = next(
        option
        for option in page.eval_on_selector_all("#compare option", "os => os.map(o => o.value)")
        if option and option != version
    )
    page.select_option("#compare", other)
    page.wait_for_selector(f"body[data-compare='{other}']", timeout=60_000)
    before = int(page.get_attribute("#decoded", "data-painted"))
    click(page, 0.5, 0.5)
    page.wait_for_function(
        f"() => Number(document.getElementById('decoded').dataset.painted) > {before}",
        timeout=10_000,
    )
    assert page.get_attribute("#decoded-compare", "data-version") == other
    assert page.is_visible("#compare-figure")
    page.wait_for_selector(f"#strips .strip[data-version='{other}']", timeout=10_000)
    assert len(page.query_selector_all("#strips .strip")) == 2  # its interpolation too
    theirs = ink(pixels(page, "#decoded-compare"))
    assert theirs.sum() > 20 and np.abs(theirs - ink(pixels(page, "#decoded"))).mean() > 0.01
    assert page.locator("#metrics tr").first.inner_text().split() == [f"v{version}", f"v{other}"]
    run_links = page.eval_on_selector_all("#links a", "links => links.map(a => a.href)")
    assert len(run_links) == 2 and all("/#/experiments/" in link for link in run_links)

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "explorer.png"))
    assert page.errors == []
    assert page.is_hidden("#banner")


def test_choosing_another_version_redraws_the_plane_and_a_missing_one_is_named(page) -> None:
    before = pixels(page, "#plane")
    shown = page.get_attribute("body", "data-version")
    other = next(
        value
        for value in page.eval_on_selector_all("#version option", "os => os.map(o => o.value)")
        if value != shown
    )
    page.select_option("#version", other)
    page.wait_for_selector(f"body[data-version='{other}']", timeout=60_000)
    assert np.abs(pixels(page, "#plane").astype(int) - before).sum() > 0  # its own latent space

    page.evaluate("() => choosePrimary('42')")  # a version that is not there
    page.wait_for_selector("#banner:not([hidden])", timeout=10_000)
    assert page.inner_text("#banner") == "vae-mnist has no version 42 (it has 2, 1)"
    assert page.get_attribute("body", "data-version") == other  # the page stays usable
    assert page.errors == []
