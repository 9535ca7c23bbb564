"""The OAuth2 authorization-code flow's loopback redirect, shared by every destination.

The plugin's :class:`segport.OAuth2Flow` builds the authorize URL and exchanges the code; this
module listens once on ``127.0.0.1`` for the redirect, checks ``state`` and hands the code over.
"""

from __future__ import annotations

import secrets
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, Callable, Mapping
from urllib.parse import parse_qs, urlparse

import requests

from .contract import OAuth2Flow
from .errors import AuthError

CALLBACK_PATH = "/callback"
_PAGE = b"<html><body><p>segport: authorization received. You can close this window.</p></body></html>"


class _Receiver(HTTPServer):
    """Holds the query of the first request to the callback path."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.query: dict[str, list[str]] | None = None
        self.arrived = threading.Event()


class _Handler(BaseHTTPRequestHandler):
    server: _Receiver

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


def authorize(
    flow: OAuth2Flow,
    config: Mapping[str, Any],
    open_url: Callable[[str], Any],
    *,
    timeout: float = 300.0,
) -> dict[str, Any]:
    """Run the flow: open the authorize URL, wait for the redirect, exchange the code.

    :param open_url: shows the URL to the user (prints it and opens a browser, in the CLI).
    :return: the config values to store (tokens, endpoints).
    """
    state = secrets.token_urlsafe(24)
    receiver = _Receiver()
    redirect_uri = f"http://127.0.0.1:{receiver.server_port}{CALLBACK_PATH}"
    thread = threading.Thread(target=receiver.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        open_url(flow.authorize_url(config, redirect_uri, state))
        if not receiver.arrived.wait(timeout):
            raise AuthError(f"no authorization arrived within {timeout:.0f} s: run 'segport connections auth' again")
    finally:
        receiver.shutdown()
        receiver.server_close()
    query = receiver.query or {}
    if query.get("state", [""])[0] != state:
        raise AuthError("the authorization redirect carried a wrong state (a forged or stale request): run it again")
    if "error" in query:
        raise AuthError(f"the platform refused the authorization ({query['error'][0]}): run it again and accept")
    code = query.get("code", [""])[0]
    if not code:
        raise AuthError("the authorization redirect carried no code: run 'segport connections auth' again")
    with requests.Session() as session:
        return flow.exchange(session, config, code, redirect_uri)
