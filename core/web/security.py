"""What every response of ``segport serve`` carries, and what its log keeps.

:class:`SecurityHeaders` adds a Content-Security-Policy without inline script or style (htmx is
served from ``/static``), ``frame-ancestors 'none'``, ``nosniff``, a referrer policy, and
``Cache-Control: no-store`` (pages show personal data). :class:`AccessLog` writes one line per
request without its query string (OAuth codes travel there) and with invite tokens cut from paths,
so no password, token or code is ever logged.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any, Awaitable, Callable, MutableMapping

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
_SECRET_PATH = re.compile(r"^(/invite/)[^/]+")

log = logging.getLogger("segport.web")


class SecurityHeaders:
    """Add the security headers to every HTTP response; ``no-store`` unless it is a static file."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, adding the headers to the response's start."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith("/static/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"cache-control" or static]
                headers.extend(HEADERS)
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


def shown_path(path: str) -> str:
    """Return ``path`` as the log shows it: an invite's token cut."""
    return _SECRET_PATH.sub(r"\1…", path)


class AccessLog:
    """Log one line per request: client, method, path (no query), status, duration, user."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on and log it once its response started."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        state = scope.setdefault("state", {})  # shared with the inner scopes' copies: the actor lands here

        async def remember(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, remember)
        finally:
            client = scope.get("client") or ("-", 0)
            user = state.get("user") or "-"
            log.info(
                '%s "%s %s" %d %.0fms user=%s',
                client[0],
                scope["method"],
                shown_path(scope["path"]),
                status,
                (time.perf_counter() - started) * 1000,
                user,
            )
