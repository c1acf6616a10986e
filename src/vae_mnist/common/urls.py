"""Showing a URL without its secrets: the one way a mirror or a store's address is printed or
logged, since `https://user:token@host/` must never reach a terminal, a CI log or MLflow."""

from __future__ import annotations

import re

# A scheme and, if present, the user information before the host. A pattern rather than
# urllib's parser, which raises on some malformed URLs (`https://[::1/`) that must still be shown.
URL_START = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<userinfo>[^/?#]*@)?")


def redact(url: str) -> str:
    """`url` with any user and password removed; anything that is not a URL, unchanged."""
    start = URL_START.match(url)
    if start is None or start["userinfo"] is None:
        return url
    return f"{start['scheme']}://{url[start.end() :]}"
