"""URL helpers: what may be logged of a URL, and whether its host is this machine."""

from __future__ import annotations

from urllib.parse import urlsplit

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def redact(url: str) -> str:
    """``scheme://host[:port]`` of ``url``: no user, password, path, query or fragment.

    Webhook services often put their token in the path (``/services/T0/B0/XXXX``), so it goes too.

    :param url: any URL, possibly malformed.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "<malformed URL>"
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` (as ``urlsplit(...).hostname`` gives it) is 127.0.0.1, localhost or ::1."""
    return (host or "").lower() in LOOPBACK_HOSTS
