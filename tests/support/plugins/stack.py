"""Fixtures: the team stack, started once per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.stack import (
    throwaway_stack,
)
from vae_mnist_tools.stack.state import Stack


@pytest.fixture(scope="session")
def team_stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    """The team stack, started once per session and shared by every test that needs one."""
    with throwaway_stack(request) as stack:
        yield stack
