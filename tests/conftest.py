"""The suite's hooks: fixtures come from the plugins in tests/support/plugins, helpers from
tests/support. A test's kind is its folder (unit/, processes/, e2e/, stack/, browser/), which
gives it its marker; tests that share a started build stay in one pytest-xdist worker."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from vae_mnist.common.tensorflow_env import quiet_tensorflow

quiet_tensorflow()  # the stages' TensorFlow settings, also for the tests that train in-process

pytest_plugins = [
    "tests.support.plugins.configs",
    "tests.support.plugins.stores",
    "tests.support.plugins.pipeline",
    "tests.support.plugins.stack",
    # the fixtures that tests of several kinds share, beside their helpers
    "tests.support.champion",
    "tests.support.docs",
    "tests.support.explorer",
    "tests.support.faults",
    "tests.support.report",
]

# The folders of tests/ that carry a marker, each its name (`make test-fast` runs unit/ alone).
MARKED_FOLDERS = ("processes", "e2e", "stack", "browser")

# Started once per session and tens of seconds to start, and not shared between processes: under
# pytest-xdist (`--dist loadgroup`) every test that uses one runs in the same worker. (The built
# pipeline is shared through its folder: see built_pipeline.)
SHARED_BUILDS = ("team_stack", "compared")


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        folder = Path(item.path).relative_to(Path(__file__).parent).parts[0]
        if folder in MARKED_FOLDERS:
            item.add_marker(getattr(pytest.mark, folder))
        if group := worker_group(item):
            item.add_marker(pytest.mark.xdist_group(group))
    by_mutation_speed(items)


def worker_group(item: pytest.Item) -> str | None:
    """The tests that share a built fixture (a session's shared build, a module's fixture) are
    one group; any other test goes to whichever worker is free."""
    fixtures = getattr(item, "_fixtureinfo", None)
    definitions = fixtures.name2fixturedefs if fixtures else {}
    for name in SHARED_BUILDS:
        if name in definitions:
            return name
    if any(defs[-1].scope == "module" for defs in definitions.values()):
        return item.module.__name__ if isinstance(item, pytest.Function) else None
    return None


def by_mutation_speed(items: list[pytest.Item]) -> None:
    """Under `make mutation`, run the fastest tests first: pytest stops at the first failure,
    so a mutant the pinned-bytes tests kill costs seconds rather than the whole selection."""
    stats = Path("mutmut-stats.json")  # mutmut runs each mutant's tests inside mutants/
    if "__mutmut_" not in os.environ.get("MUTANT_UNDER_TEST", "") or not stats.is_file():
        return
    seconds = json.loads(stats.read_text()).get("duration_by_test", {})
    items.sort(key=lambda item: seconds.get(item.nodeid, float("inf")))
