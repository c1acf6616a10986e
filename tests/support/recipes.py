"""Hypothesis' values for the recipes' param overrides."""

from __future__ import annotations

from hypothesis import strategies as st

values = st.integers(0, 3)
