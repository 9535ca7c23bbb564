"""URLs as segport may show or pass them on: without the password they may carry."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def without_password(url: str, mask: str = "") -> str:
    """Return ``url`` with its password replaced by ``mask``.

    ``"***"`` for messages (``user:***@host``), ``""`` to drop it (``user@host``: a task's database
    URL, completed by the worker's own setting).
    """
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    credentials = (f"{user}:{mask}" if user else mask) if mask else user
    return urlunsplit(parts._replace(netloc=f"{credentials}@{host}"))
