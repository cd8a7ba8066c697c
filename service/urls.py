"""Connection URLs in messages and logs."""

from __future__ import annotations


def redact(url: str) -> str:
    """The URL without its password, for error messages and logs."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"
