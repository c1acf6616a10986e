"""The pages' runnable blocks run, as a user types them, on the shrunk pipeline. The site's
other checks: tests/unit/project/test_docs.py."""

from __future__ import annotations

import pytest

from tests.support.docs import (
    DOCS,
    RUNNABLE,
    run_block,
    runnable_blocks,
)
from tests.support.workspace import BIN, Repo

RUN_PAGES = ["getting-started.md", "experiments.md", "compare.md", "tracking.md", "sweeps.md"]


@pytest.mark.parametrize("name", RUN_PAGES)
def test_the_runnable_blocks_of_a_page_run_on_the_shrunk_pipeline(
    name: str, pipeline: Repo
) -> None:
    blocks = runnable_blocks((DOCS / name).read_text())
    assert blocks, f"{name} marks no block {RUNNABLE}"
    (pipeline.root / ".venv").symlink_to(BIN.parent)  # where the blocks find dvc, as a user's
    for language, code in blocks:
        done = run_block(pipeline, language, code)
        said = f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        assert done.returncode == 0, f"{name}:\n{code}\n{said}"
