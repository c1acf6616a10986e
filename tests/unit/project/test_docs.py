"""The documentation: the site builds strict (a broken link fails it), every `make` target and every
param is documented on some page, every README link resolves, the blocks marked runnable run on
the shrunk pipeline, and the built site shows its navigation and pictures in Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import yaml
from markdown_it import MarkdownIt

from tests.support.docs import (
    DOCS,
    RUNNABLE,
    build,
    run_block,
    runnable_blocks,
)
from tests.support.paths import REPO
from tests.support.workspace import Repo
from vae_mnist.common.config import PARAMS_FILE, load_config
from vae_mnist.common.ports import EXPLORER_PORT, SERVE_PORT, UI_PORT


def pages() -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(DOCS.glob("*.md"))}


def _links(text: str) -> list[str]:
    found = []
    for token in MarkdownIt("gfm-like").parse(text):
        for child in token.children or []:
            if child.type in ("link_open", "image"):
                found.append(child.attrGet("href") or child.attrGet("src"))
    return found


def _anchors(page: Path) -> set[str]:
    """The ids MkDocs gives a page's headings (its toc extension's slugs)."""
    from markdown.extensions.toc import slugify

    headings = re.findall(r"^#+ (.+)$", page.read_text(), re.M)
    return {slugify(re.sub(r"[`*]", "", h), "-") for h in headings}


def test_the_site_builds_strict_and_a_broken_link_fails_it(site: Path, tmp_path: Path) -> None:
    assert (site / "index.html").is_file() and (site / "compare.html").is_file()
    copy = tmp_path / "repo"
    shutil.copytree(DOCS, copy / "docs", ignore=shutil.ignore_patterns("*.py"))
    shutil.copy(REPO / "mkdocs.yml", copy)
    page = copy / "docs" / "results.md"
    page.write_text(page.read_text() + "\nSee [the recipes](experiments.md#no-such-anchor).\n")
    broken = build(copy / "mkdocs.yml", tmp_path / "site")
    assert broken.returncode != 0 and "no-such-anchor" in broken.stderr


def test_every_make_target_is_documented() -> None:
    listed = subprocess.run(["make", "-s", "help"], cwd=REPO, capture_output=True, text=True)
    targets = re.findall(r"^  make (\S+)", listed.stdout, re.M)
    assert len(targets) > 20 and "report" in targets and "docs" in targets
    text = "\n".join(pages().values())
    missing = [t for t in targets if not re.search(rf"(?:`|^)make {re.escape(t)}\b", text, re.M)]
    assert missing == [], f"no page names these (`make <target>`, or a block's line): {missing}"


def test_every_param_is_documented() -> None:
    keys = load_config(REPO / PARAMS_FILE).flat()
    text = "\n".join(pages().values())
    missing = [k for k in keys if f"`{k}`" not in text and f"`{k}:" not in text]
    assert missing == [], f"params no page names (`section.key`): {missing}"


def test_every_port_the_docs_and_the_makefile_name_is_the_code_s() -> None:
    """The default ports live in common/ports.py (the team stack's in its control module, the
    docs site's is mkdocs' default); each page and `make help` says the same."""
    from vae_mnist_tools.stack.control import DEFAULT_PORTS

    ports = {"ui": UI_PORT, "serve": SERVE_PORT, "explore": EXPLORER_PORT, "docs-serve": 8000}
    stack = set(DEFAULT_PORTS.values())
    texts = {p: p.read_text() for p in [REPO / "README.md", REPO / "Makefile",
                                        *sorted((REPO / "docs").glob("*.md"))]}  # fmt: skip
    seen = {name: 0 for name in ports}
    for path, text in texts.items():
        for line in text.splitlines():
            for port in re.findall(r"127\.0\.0\.1:(\d+)", line):
                assert int(port) in {*ports.values(), *stack}, f"{path.name}: {line}"
                named = re.search(r"make ([a-z-]+)|^([a-z-]+):", line)
                named = named if named and (named.group(1) or named.group(2)) in ports else None
                if named:
                    name = named.group(1) or named.group(2)
                    assert int(port) == ports[name], f"{path.name}: {line}"
                    seen[name] += 1
    assert all(seen.values()), seen  # each said at least once where its command is named
    assert f"(default {EXPLORER_PORT})" in texts[REPO / "Makefile"]
    assert "\nDOCS_PORT ?= 8000\n" in texts[REPO / "Makefile"]


def test_every_readme_link_resolves_to_a_page_or_a_file() -> None:
    links = _links((REPO / "README.md").read_text())
    local = [link for link in links if not re.match(r"https?://", link)]
    assert len(local) >= 15
    for link in local:
        path, _, anchor = link.partition("#")
        target = REPO / path
        assert target.exists(), link
        if anchor:
            assert anchor in _anchors(target), link
    pages_linked = {Path(link.partition("#")[0]).name for link in local if link.startswith("docs/")}
    assert pages_linked >= {"compare.md", "team.md", "reproduce.md", "sweeps.md", "serving.md"}


def test_the_readme_is_a_landing_page() -> None:
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= 150
    text = "\n".join(lines)
    assert "make repro" in text and "make test" in text and "| `evaluate` |" in text


def test_a_block_that_fails_fails_its_page(tmp_path: Path) -> None:
    repo = object.__new__(Repo)
    repo.root, repo.env = tmp_path, {"PATH": os.environ["PATH"]}
    text = f"{RUNNABLE}\n```bash\necho one\nno-such-command --flag\necho two\n```\n"
    ((language, code),) = runnable_blocks(text)
    done = run_block(repo, language, code)
    assert done.returncode != 0 and "two" not in done.stdout


def test_the_nav_lists_every_page() -> None:
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text())
    listed = {next(iter(entry.values())) for entry in config["nav"]}
    assert listed == set(pages())
