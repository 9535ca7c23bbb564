"""The OAuth2 authorization-code flow's parts shared by every destination.

The plugin's :class:`segport.OAuth2Flow` builds the authorize URL and exchanges the code; this
module makes the ``state``, reads the redirect's query (the state, an ``error``, the code) and, for
the CLI, listens once on ``127.0.0.1`` for the redirect (:class:`LoopbackReceiver`). The web console
receives the redirect on its own callback route instead; both finish through
:meth:`segport.services.Connections.complete_authorization`.
"""

from __future__ import annotations

import hmac
import secrets
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import TracebackType
from typing import Any, Mapping
from urllib.parse import parse_qs, urlparse

from .errors import AuthError

CALLBACK_PATH = "/callback"
STATE_LIFETIME = 600.0  # seconds an authorization may take, from its start to the redirect back
_PAGE = b"<html><body><p>segport: authorization received. You can close this window.</p></body></html>"


@dataclass(frozen=True)
class AuthorizationStart:
    """An authorization begun: send the user's browser to ``url``; keep ``state`` to check the redirect."""

    url: str
    state: str


def new_state() -> str:
    """Return a fresh, unguessable ``state`` (256 random bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def same_state(given: str, expected: str) -> bool:
    """Compare two states in constant time."""
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def check_state(query: Mapping[str, str], *, state: str, expected_state: str) -> None:
    """Refuse (:class:`AuthError`) a redirect whose ``state`` is not the one the authorization began with."""
    if not same_state(state, expected_state) or not same_state(query.get("state", state), state):
        raise AuthError("the authorization redirect carried a wrong state (a forged or stale request): run it again")


def redirect_code(query: Mapping[str, str]) -> str:
    """Return the authorization code a redirect carries (its state checked already).

    Raises :class:`AuthError` with one line saying what to do on an ``error`` (e.g. ``access_denied``:
    the user declined) or no code.
    """
    if "error" in query:
        error = "".join(c for c in query["error"][:100] if c.isprintable())  # the redirect's text: one short line
        raise AuthError(f"the platform refused the authorization ({error}): run it again and accept")
    code = query.get("code", "")
    if not code:
        raise AuthError("the authorization redirect carried no code: run 'segport connections auth' again")
    return code


class LoopbackReceiver:
    """Listens on a free loopback port for one redirect to :data:`CALLBACK_PATH` (use it as a context manager)."""

    def __init__(self) -> None:
        self._server = _Server()
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)

    @property
    def redirect_uri(self) -> str:
        """The URI the platform redirects the browser to."""
        return f"http://127.0.0.1:{self._server.server_port}{CALLBACK_PATH}"

    def wait(self, timeout: float) -> dict[str, str] | None:
        """Return the redirect's query (the first value of each name), or None when none arrived in time."""
        if not self._server.arrived.wait(timeout):
            return None
        return {name: values[0] for name, values in (self._server.query or {}).items()}

    def __enter__(self) -> LoopbackReceiver:
        """Start listening."""
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        """Stop listening and free the port."""
        self._server.shutdown()
        self._server.server_close()


class _Server(HTTPServer):
    """Holds the query of the first request to the callback path."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.query: dict[str, list[str]] | None = None
        self.arrived = threading.Event()


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        url = urlparse(self.path)
        if url.path != CALLBACK_PATH:
            self.send_error(404)
            return
        self.server.query = parse_qs(url.query)
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(_PAGE)))
        self.end_headers()
        self.wfile.write(_PAGE)
        self.server.arrived.set()

    def log_message(self, format: str, *args: Any) -> None:
        return
