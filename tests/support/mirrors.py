"""A mirror URL's credentials, which no output may show."""

from __future__ import annotations

USER, SECRET = "u5er-k9", "pa55-s3cr3t-q2"  # distinct enough that no other text holds them
