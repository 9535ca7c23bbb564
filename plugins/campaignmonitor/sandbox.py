"""A local fake of the Campaign Monitor API v3.3 (the parts an exporter uses), standard library only.

``CampaignMonitorSandbox().start()`` serves one account with one client and one list on a loopback port:
HTTP Basic (API key) or OAuth Bearer auth, clients, lists, custom fields, subscriber add/import/read,
unsubscribe/delete, rule segments, the OAuth2 web-server flow and injectable faults, plus an
unauthenticated ``/_sandbox/*`` test API. The rules live in :mod:`segport_campaignmonitor.sandbox_state`;
source keys in comments (``[CS-PY] B2``) point at ``provider-apis.md`` Part B.

Run it alone with ``python -m segport_campaignmonitor.sandbox --port 8080 --seed 1``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import random
import re
import secrets
import signal
import socket
import socketserver
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any, Callable, Mapping, Sequence
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

from segport import Sandbox

from .sandbox_state import JSON, ApiError, SandboxState, bad_request, parse_paging

__all__ = ["CampaignMonitorSandbox", "main"]

JSON_TYPE = "application/json; charset=utf-8"  # [CS-PY createsend.py; CM-GS] B1
API_PREFIX = "/api/v3.3"
TOKEN_LIFETIME = 1_209_600  # 14 days [CS-PY fixtures oauth_exchange_token] B1
FAULTS: Mapping[int, str] = {
    429: "Rate limit exceeded",  # [CM-GS via api-evangelist] B3 (documented for /transactional)
    500: "Sorry, we've run into a problem",  # [CM-GS] B3 (message UNCONFIRMED)
    503: "Service Unavailable",  # not documented for Campaign Monitor: the sandbox's transient outage
}
LIST_STATES = {
    "active": "Active",
    "unsubscribed": "Unsubscribed",
    "deleted": "Deleted",
    "bounced": "Bounced",
    "unconfirmed": "Unconfirmed",
}
BAD_CODE = "Specified code was invalid or expired"  # [CS-PY fixtures] B1


@dataclass
class Request:
    """One parsed HTTP request."""

    method: str
    path: str
    query: dict[str, str]
    raw: bytes
    headers: Mapping[str, str]  # lower-cased names
    params: dict[str, str] = field(default_factory=dict)

    def json(self) -> JSON:
        """The body as a JSON object; ``{}`` when empty; else 400 Code 400 (message per the brief)."""
        if not self.raw.strip():
            return {}
        try:
            body = json.loads(self.raw)
        except ValueError:
            raise bad_request() from None
        if not isinstance(body, dict):
            raise bad_request()
        return body

    def form(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(self.raw.decode("utf-8", "replace"), keep_blank_values=True).items()}

    def email(self) -> str:
        """The ``email`` query parameter of subscriber routes [CS-PY subscriber.py] B2 (absent: 203 after the
        list check)."""
        return self.query.get("email", "")


@dataclass
class Response:
    status: int
    body: Any = None  # None: empty body; anything else is sent as JSON (a str becomes a JSON string)
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[["CampaignMonitorSandbox", Request], Response]
_ROUTES: list[tuple[str, re.Pattern[str], Handler]] = []


def route(method: str, pattern: str) -> Callable[[Handler], Handler]:
    """Register a handler for ``method`` on paths fully matching ``pattern``."""

    def register(handler: Handler) -> Handler:
        _ROUTES.append((method, re.compile(pattern), handler))
        return handler

    return register


def ok(body: Any = None, status: int = 200) -> Response:
    return Response(status, body)


def error(err: ApiError) -> Response:
    return Response(err.status, err.body())


class CampaignMonitorSandbox(Sandbox):
    """A faithful local Campaign Monitor (one client, one list) served over HTTP on a background thread.

    :param latency_ms: delay added to every API call.
    :param fail_rate: share of API calls answered 429/500/503 without touching state (seeded).
    :param seed: makes the API key, client and list ids, segment ids and fault sequence reproducible.
    :param api_key: use this key instead of a generated 32-hex one.
    """

    def __init__(
        self,
        *,
        latency_ms: int = 0,
        fail_rate: float = 0.0,
        seed: int | None = None,
        api_key: str | None = None,
    ) -> None:
        super().__init__(latency_ms=latency_ms, fail_rate=fail_rate, seed=seed)
        self.status_codes: tuple[int, ...] = (429, 500, 503)
        self.requests_log: list[tuple[str, str]] = []
        self.max_in_flight = 0
        self._data = SandboxState(seed=seed, api_key=api_key)
        self._initial = (latency_ms, fail_rate)
        self._lock = threading.Lock()  # counters, faults, credentials (the data has its own lock)
        self._rng = random.Random(seed)
        self._in_flight = 0
        self._revoked = False
        self._codes: dict[str, tuple[str, str]] = {}  # OAuth code -> (client_id, redirect_uri)
        self._tokens: dict[str, tuple[str, float]] = {}  # access token -> (active|expired|revoked, expiry)
        self._refresh: set[str] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._base_url: str | None = None

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve in a background thread; return the base URL ``http://host:port``."""
        if self._server is not None:
            raise RuntimeError("sandbox already started")
        server = _Server((host, port), _RequestHandler)
        server.sandbox = self
        self._server = server
        self._base_url = f"http://{host}:{server.server_address[1]}"
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="campaignmonitor-sandbox", daemon=True
        )
        self._thread.start()
        return self._base_url

    def stop(self) -> None:
        """Stop serving, drop open keep-alive connections and release the port."""
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if thread is not None:
            thread.join(5)
        self._server = self._thread = None

    def __enter__(self) -> CampaignMonitorSandbox:
        if self._server is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what clients need ------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise RuntimeError("sandbox not started")
        return self._base_url

    @property
    def api_base_url(self) -> str:
        return self.base_url + API_PREFIX

    @property
    def api_key(self) -> str:
        return self._data.api_key

    @property
    def list_id(self) -> str:
        return self._data.list_id

    @property
    def client_id(self) -> str:
        return self._data.client_id

    def demo_connection(self) -> dict[str, Any]:
        return {"api_key": self.api_key, "api_base_url": self.api_base_url}

    def demo_export_options(self) -> dict[str, Any]:
        return {"list_id": self.list_id}

    def demo_mapping(self) -> dict[str, str]:
        return {"Name": "first_name+last_name"}

    def summary(self) -> dict[str, Any]:
        """``{"list", "subscribers": {State: n}, "segments field options": {option: n}, "rule segments"}``."""
        return self._data.summary()

    # -- test hooks ---------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Everything, JSON-able: the client, lists (details, custom fields, subscribers, segments), suppressions."""
        dump = self._data.dump()
        with self._lock:
            dump["revoked"] = self._revoked
        return dump

    def add_subscriber(
        self,
        email: str,
        state: str = "Active",
        name: str = "",
        custom_fields: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Seed a pre-existing subscriber (any state, no rules applied); return the subscriber details.

        ``custom_fields`` maps field names (or keys) to a value, or a list of options for MultiSelectMany.
        """
        return self._data.seed_subscriber(email, state, name, custom_fields)

    def suppress(self, email: str) -> None:
        """Add an address to the client's suppression list: imports fail 204 unless Resubscribe [B2]."""
        self._data.suppress([email])

    def revoke_key(self) -> None:
        """Revoke the API key (401 Code 100) and every OAuth token (401 Code 122) [B1]."""
        with self._lock:
            self._revoked = True
            self._tokens = {t: ("revoked", exp) for t, (_, exp) in self._tokens.items()}
            self._refresh.clear()

    def expire_tokens(self) -> None:
        """Expire every live OAuth access token: 401 Code 121 until the client refreshes [B1]."""
        with self._lock:
            self._tokens = {t: ("expired" if s == "active" else s, e) for t, (s, e) in self._tokens.items()}

    def delete_list(self) -> None:
        """Delete the list: its routes answer 400 Code 101 afterwards [B1]."""
        self._data.delete_list()

    def set_faults(
        self,
        *,
        fail_rate: float | None = None,
        latency_ms: int | None = None,
        status_codes: Sequence[int] | None = None,
    ) -> None:
        """Change fault injection; ``status_codes`` among 429, 500 and 503."""
        with self._lock:
            if status_codes is not None:
                if not status_codes or any(c not in FAULTS for c in status_codes):
                    raise ValueError("status_codes must be among 429, 500, 503")
                self.status_codes = tuple(status_codes)
            if fail_rate is not None:
                self.fail_rate = float(fail_rate)
            if latency_ms is not None:
                self.latency_ms = int(latency_ms)

    def reset(self) -> None:
        """Back to the freshly constructed state (same key, client and list ids; nothing in the list)."""
        self._data.reset()
        with self._lock:
            self.latency_ms, self.fail_rate = self._initial
            self.status_codes = (429, 500, 503)
            self._rng = random.Random(self.seed)
            self._revoked = False
            self._codes.clear()
            self._tokens.clear()
            self._refresh.clear()
            self.requests_log.clear()
            self.max_in_flight = 0

    # -- request pipeline -----------------------------------------------------------------------------

    def respond(self, req: Request) -> Response:
        """Answer one request: control API as is, OAuth with latency, the API through every gate."""
        try:
            if req.path.startswith("/_sandbox/"):
                return self._route(req)
            with self._lock:
                self.requests_log.append((req.method, req.path))
            if req.path == "/oauth" or req.path.startswith("/oauth/"):
                self._sleep()
                return self._route(req)
            if req.path.startswith(API_PREFIX + "/"):
                return self._api(req)
            return self._route(req)
        except ApiError as err:
            return error(err)

    def _api(self, req: Request) -> Response:
        """Latency, faults, auth, then the handler. No documented concurrency limit [B3]: only measured."""
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            self._sleep()
            fault = self._roll_fault()
            if fault is not None:
                raise ApiError(fault, fault, FAULTS[fault])  # no X-RateLimit headers outside /transactional [B3]
            self._authenticate(req.headers.get("authorization", ""))
            return self._route(req)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _sleep(self) -> None:
        if self.latency_ms > 0:
            time.sleep(self.latency_ms / 1000)

    def _roll_fault(self) -> int | None:
        with self._lock:
            if self.fail_rate > 0 and self._rng.random() < self.fail_rate:
                return self._rng.choice(self.status_codes)
        return None

    def _authenticate(self, header: str) -> None:
        """Basic with the API key as username (password ignored), or Bearer <token issued here> [CS-PY; CM-GS] B1."""
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            with self._lock:
                status, expiry = self._tokens.get(value.strip(), ("unknown", 0.0))
            if status == "active" and time.monotonic() >= expiry:
                status = "expired"
            if status == "active":
                return
            if status == "expired":
                raise ApiError(401, 121, "Expired OAuth Token")
            if status == "revoked":
                raise ApiError(401, 122, "Revoked OAuth Token")
            raise ApiError(401, 120, "Invalid OAuth Token")
        key = None
        if scheme.lower() == "basic":
            try:
                key = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")[0]
            except (binascii.Error, UnicodeDecodeError):
                key = None
        if key is None:  # absent or garbled header [createsend-php#15, createsend-python#61] B1
            raise ApiError(401, 50, "Must supply a valid HTTP Basic Authorization header")
        with self._lock:
            if key == self._data.api_key and not self._revoked:
                return
        raise ApiError(401, 100, "Invalid API Key")  # [CM-GS] B1

    def _route(self, req: Request) -> Response:
        allowed = []
        for method, pattern, handler in _ROUTES:
            match = pattern.fullmatch(req.path)
            if match is None:
                continue
            if method == req.method:
                req.params = {k: unquote(v) for k, v in match.groupdict().items()}
                return handler(self, req)
            allowed.append(method)
        if allowed:  # the sandbox's answer for a known route with another method
            return Response(405, {"Code": 405, "Message": "Method not allowed"}, {"Allow": ", ".join(sorted(allowed))})
        raise ApiError(404, 404, "Not found")

    # -- OAuth bookkeeping ------------------------------------------------------------------------

    def _issue_code(self, client_id: str, redirect_uri: str) -> str:
        code = secrets.token_hex(16)
        with self._lock:
            self._codes[code] = (client_id, redirect_uri)
        return code

    def _new_pair(self) -> JSON:
        """Call with the lock held: a fresh access/refresh token pair [CS-PY fixtures] B1."""
        access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        self._tokens[access] = ("active", time.monotonic() + TOKEN_LIFETIME)
        self._refresh.add(refresh)
        return {"access_token": access, "expires_in": TOKEN_LIFETIME, "refresh_token": refresh}

    def _redeem(self, code: str, client_id: str, redirect_uri: str) -> JSON | None:
        """Trade a code once for tokens; None when unknown, reused or issued to another client/redirect."""
        with self._lock:
            issued = self._codes.pop(code, None)
            return self._new_pair() if issued == (client_id, redirect_uri) else None

    def _refreshed(self, refresh_token: str) -> JSON | None:
        """A new pair for a live refresh token, which is spent [CS-PY refresh_token] B1."""
        with self._lock:
            if refresh_token not in self._refresh:
                return None
            self._refresh.discard(refresh_token)
            return self._new_pair()


# -- HTTP ------------------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # listen backlog: bursts of new connections must not wait for SYN retries
    sandbox: CampaignMonitorSandbox

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        self.connections: set[socket.socket] = set()
        self.conn_lock = threading.Lock()
        super().__init__(address, handler)

    def server_bind(self) -> None:
        """Bind without the reverse-DNS lookup of ``HTTPServer.server_bind``."""
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients dropping connections are normal; stay quiet."""

    def close_connections(self) -> None:
        with self.conn_lock:
            for conn in self.connections:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: every response carries Content-Length
    disable_nagle_algorithm = True
    wbufsize = 1 << 16  # headers and body leave in one write (flushed after each request)
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.conn_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.conn_lock:
            self.server.connections.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default per-request log."""

    def _handle(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        headers = {name.lower(): value for name, value in self.headers.items()}
        req = Request(self.command, url.path, query, raw, headers)
        try:
            resp = self.server.sandbox.respond(req)
        except Exception as exc:  # a sandbox bug: answer 500 rather than drop the connection
            resp = error(ApiError(500, 500, f"sandbox error: {exc!r}"))
        indent = 2 if query.get("pretty", "").lower() == "true" else None  # `pretty=true` indents [CM-GS] B1
        separators = None if indent else (",", ":")
        body = b"" if resp.body is None else json.dumps(resp.body, indent=indent, separators=separators).encode()
        self.send_response(resp.status)
        if body:
            self.send_header("Content-Type", JSON_TYPE)
        self.send_header("Content-Length", str(len(body)))
        for name, value in resp.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = _handle


# -- API routes [B1-B4]: every route ends in .json ---------------------------------------------------

API = re.escape(API_PREFIX)
CLIENT = API + r"/clients/(?P<client>[^/]+)"
LIST = API + r"/lists/(?P<list>[^/]+)"
SUBSCRIBERS = API + r"/subscribers/(?P<list>[^/]+)"
SEGMENT = API + r"/segments/(?P<seg>[^/]+)"


@route("GET", API + r"/clients\.json")
def _clients(sb: CampaignMonitorSandbox, req: Request) -> Response:
    return ok(sb._data.clients())  # [CS-PY fixture clients] B1


@route("GET", CLIENT + r"/lists\.json")
def _client_lists(sb: CampaignMonitorSandbox, req: Request) -> Response:
    return ok(sb._data.client_lists(req.params["client"]))  # [CS-PY fixture lists] B1


@route("POST", CLIENT + r"/suppress\.json")
def _suppress(sb: CampaignMonitorSandbox, req: Request) -> Response:
    sb._data.suppress_for_client(req.params["client"], req.json())  # [CS-PY client.py] B3
    return ok()


@route("GET", LIST + r"\.json")
def _list(sb: CampaignMonitorSandbox, req: Request) -> Response:
    return ok(sb._data.list_details(req.params["list"]))


@route("GET", LIST + r"/customfields\.json")
def _custom_fields(sb: CampaignMonitorSandbox, req: Request) -> Response:
    return ok(sb._data.custom_fields(req.params["list"]))


@route("POST", LIST + r"/customfields\.json")
def _create_custom_field(sb: CampaignMonitorSandbox, req: Request) -> Response:
    return ok(sb._data.create_custom_field(req.params["list"], req.json()), 201)  # key as a JSON string [CS-PY] B1


@route("PUT", LIST + r"/customfields/(?P<key>[^/]+)/options\.json")
def _field_options(sb: CampaignMonitorSandbox, req: Request) -> Response:
    sb._data.update_field_options(req.params["list"], req.params["key"], req.json())
    return ok()


@route("DELETE", LIST + r"/customfields/(?P<key>[^/]+)\.json")
def _delete_field(sb: CampaignMonitorSandbox, req: Request) -> Response:
    sb._data.delete_custom_field(req.params["list"], req.params["key"])
    return ok()


@route("GET", LIST + r"/(?P<state>active|unsubscribed|deleted|bounced|unconfirmed)\.json")
def _list_subscribers(sb: CampaignMonitorSandbox, req: Request) -> Response:
    state = LIST_STATES[req.params["state"]]
    return ok(sb._data.list_subscribers(req.params["list"], state, parse_paging(req.query)))


@route("GET", LIST + r"/segments\.json")
def _segments(sb: CampaignMonitorSandbox, req: Request) -> Response:
    return ok(sb._data.list_segments(req.params["list"]))  # [CS-PY list.py] B1


@route("POST", SUBSCRIBERS + r"/import\.json")
def _import(sb: CampaignMonitorSandbox, req: Request) -> Response:
    # Full success 201 [CM-GS conventions] B2 (exact code UNCONFIRMED); partial failure raises 400/210.
    return ok(sb._data.import_subscribers(req.params["list"], req.json()), 201)


@route("POST", SUBSCRIBERS + r"\.json")
def _add_subscriber(sb: CampaignMonitorSandbox, req: Request) -> Response:
    return ok(sb._data.add_subscriber(req.params["list"], req.json()), 201)  # the email as a JSON string B2


@route("PUT", SUBSCRIBERS + r"\.json")
def _update_subscriber(sb: CampaignMonitorSandbox, req: Request) -> Response:
    sb._data.update_subscriber(req.params["list"], req.email(), req.json())
    return ok()


@route("GET", SUBSCRIBERS + r"\.json")
def _get_subscriber(sb: CampaignMonitorSandbox, req: Request) -> Response:
    return ok(sb._data.get_subscriber(req.params["list"], req.email()))


@route("DELETE", SUBSCRIBERS + r"\.json")
def _delete_subscriber(sb: CampaignMonitorSandbox, req: Request) -> Response:
    sb._data.delete_subscriber(req.params["list"], req.email())
    return ok()


@route("POST", SUBSCRIBERS + r"/unsubscribe\.json")
def _unsubscribe(sb: CampaignMonitorSandbox, req: Request) -> Response:
    sb._data.unsubscribe(req.params["list"], req.json())
    return ok()  # 200, empty body (UNCONFIRMED) B3


@route("POST", SEGMENT + r"\.json")
def _create_segment(sb: CampaignMonitorSandbox, req: Request) -> Response:
    # POST /segments/{listid}.json: the path id is the list here [CS-PY segment.py] B4.
    return ok(sb._data.create_segment(req.params["seg"], req.json()), 201)


@route("GET", SEGMENT + r"\.json")
def _get_segment(sb: CampaignMonitorSandbox, req: Request) -> Response:
    return ok(sb._data.get_segment(req.params["seg"]))


@route("PUT", SEGMENT + r"\.json")
def _update_segment(sb: CampaignMonitorSandbox, req: Request) -> Response:
    sb._data.update_segment(req.params["seg"], req.json())
    return ok()


@route("DELETE", SEGMENT + r"\.json")
def _delete_segment(sb: CampaignMonitorSandbox, req: Request) -> Response:
    sb._data.delete_segment(req.params["seg"])
    return ok()


@route("GET", SEGMENT + r"/active\.json")
def _segment_active(sb: CampaignMonitorSandbox, req: Request) -> Response:
    return ok(sb._data.segment_active(req.params["seg"], parse_paging(req.query)))


@route("POST", SEGMENT + r"/rules\.json")
def _add_rules(sb: CampaignMonitorSandbox, req: Request) -> Response:
    sb._data.add_rule_group(req.params["seg"], req.json())
    return ok(status=201)


@route("DELETE", SEGMENT + r"/rules\.json")
def _clear_rules(sb: CampaignMonitorSandbox, req: Request) -> Response:
    sb._data.clear_rules(req.params["seg"])
    return ok()


# -- OAuth2 web-server flow [B1] (at api.createsend.com in reality; errors are {"error", "error_description"}) --


def _oauth_error(status: int, err: str, description: str) -> Response:
    return Response(status, {"error": err, "error_description": description})


@route("GET", r"/oauth")
def _authorize(sb: CampaignMonitorSandbox, req: Request) -> Response:
    """Auto-approve and redirect to ``redirect_uri?code=…&state=…`` [CM-GS; CS-PY test_authentication.py] B1.

    ``type=web_server`` is accepted, and so is its absence (the Python client omits it; UNCONFIRMED).
    """
    q = req.query
    if q.get("type", "web_server") != "web_server" or not q.get("client_id") or not q.get("redirect_uri"):
        return _oauth_error(400, "invalid_request", "type=web_server, client_id and redirect_uri are required")
    params = {"code": sb._issue_code(q["client_id"], q["redirect_uri"])}
    if "state" in q:
        params["state"] = q["state"]
    sep = "&" if "?" in q["redirect_uri"] else "?"
    return Response(302, headers={"Location": q["redirect_uri"] + sep + urlencode(params)})


@route("POST", r"/oauth/token")
def _token(sb: CampaignMonitorSandbox, req: Request) -> Response:
    """Form-encoded code exchange or refresh -> ``{"access_token", "expires_in", "refresh_token"}`` [CS-PY] B1."""
    form = req.form()
    grant = form.get("grant_type")
    if grant == "refresh_token":
        pair = sb._refreshed(form.get("refresh_token", ""))
        if pair is None:  # text for refresh tokens: the sandbox reuses the documented code message
            return _oauth_error(400, "invalid_grant", BAD_CODE)
        return ok(pair)
    if grant != "authorization_code":
        return _oauth_error(400, "unsupported_grant_type", "grant_type must be authorization_code or refresh_token")
    if not form.get("client_id") or not form.get("client_secret"):
        return _oauth_error(400, "invalid_client", "client_id and client_secret are required")
    pair = sb._redeem(form.get("code", ""), form["client_id"], form.get("redirect_uri", ""))
    if pair is None:
        return _oauth_error(400, "invalid_grant", BAD_CODE)
    return ok(pair)


# -- test/state API (no auth, faults or latency) ------------------------------------------------------


@route("GET", r"/_sandbox/state")
def _state(sb: CampaignMonitorSandbox, req: Request) -> Response:
    return ok(sb.state())


@route("GET", r"/_sandbox/summary")
def _summary(sb: CampaignMonitorSandbox, req: Request) -> Response:
    return ok(sb.summary())


@route("POST", r"/_sandbox/subscribers")
def _seed_subscriber(sb: CampaignMonitorSandbox, req: Request) -> Response:
    body = req.json()
    if not isinstance(body.get("email"), str):
        raise ApiError(400, 400, "email is required")
    try:
        sub = sb.add_subscriber(
            body["email"], str(body.get("state", "Active")), str(body.get("name") or ""), body.get("custom_fields")
        )
    except (ValueError, TypeError, AttributeError) as err:
        raise ApiError(400, 400, str(err)) from None
    return ok(sub)


@route("POST", r"/_sandbox/suppress")
def _seed_suppression(sb: CampaignMonitorSandbox, req: Request) -> Response:
    email = req.json().get("email")
    if not isinstance(email, str) or not email.strip():
        raise ApiError(400, 400, "email is required")
    sb.suppress(email)
    return Response(204)


@route("POST", r"/_sandbox/faults")
def _faults(sb: CampaignMonitorSandbox, req: Request) -> Response:
    body = req.json()
    try:
        sb.set_faults(
            fail_rate=body.get("fail_rate"), latency_ms=body.get("latency_ms"), status_codes=body.get("status_codes")
        )
    except (ValueError, TypeError) as err:
        raise ApiError(400, 400, str(err)) from None
    return ok({"fail_rate": sb.fail_rate, "latency_ms": sb.latency_ms, "status_codes": list(sb.status_codes)})


@route("POST", r"/_sandbox/revoke")
def _revoke(sb: CampaignMonitorSandbox, req: Request) -> Response:
    sb.revoke_key()
    return Response(204)


@route("POST", r"/_sandbox/expire-tokens")
def _expire(sb: CampaignMonitorSandbox, req: Request) -> Response:
    sb.expire_tokens()
    return Response(204)


@route("POST", r"/_sandbox/reset")
def _reset(sb: CampaignMonitorSandbox, req: Request) -> Response:
    sb.reset()
    return Response(204)


# -- command line ----------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Serve a sandbox until SIGINT/SIGTERM; print ``key: value`` lines describing it."""
    parser = argparse.ArgumentParser(
        prog="python -m segport_campaignmonitor.sandbox", description="Serve a local Campaign Monitor sandbox."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--fail-rate", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--api-key", default=None)
    args = parser.parse_args(argv)
    sandbox = CampaignMonitorSandbox(
        latency_ms=args.latency_ms, fail_rate=args.fail_rate, seed=args.seed, api_key=args.api_key
    )
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        url = sandbox.start(args.host, args.port)
        for key, value in (
            ("base_url", url),
            ("api_base_url", sandbox.api_base_url),
            ("api_key", sandbox.api_key),
            ("list_id", sandbox.list_id),
        ):
            print(f"{key}: {value}")
        sys.stdout.flush()
        while not stop.wait(0.2):
            pass
    finally:
        sandbox.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
