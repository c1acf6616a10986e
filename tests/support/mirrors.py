"""What test_mirrors's tests of several kinds share."""

from __future__ import annotations

USER, SECRET = "u5er-k9", "pa55-s3cr3t-q2"  # distinct enough that no other text holds them
