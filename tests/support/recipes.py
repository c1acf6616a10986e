"""What test_recipes's tests of several kinds share."""

from __future__ import annotations

from hypothesis import strategies as st

values = st.integers(0, 3)
