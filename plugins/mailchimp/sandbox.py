"""A local fake of the Mailchimp Marketing API v3 (the parts an exporter uses), standard library only.

``MailchimpSandbox().start()`` serves one account (dc ``us1``) with one audience on a loopback port:
HTTP Basic or OAuth Bearer auth, audiences, merge fields, batch subscribe, members, tags, static
segments, the OAuth2 code flow, a 10-connection limit and injectable faults, plus an unauthenticated
``/_sandbox/*`` test API. The rules live in :mod:`segport_mailchimp.sandbox_state`; source keys in
comments (``[MC-SPEC] A4``) point at ``provider-apis.md`` Part A.

Run it alone with ``python -m segport_mailchimp.sandbox --port 8080 --seed 1``.
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
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any, Callable, Iterable, Mapping, Sequence
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

from segport import Sandbox

from .sandbox_state import ALL_STATUSES, JSON, MAX_COUNT, ApiError, SandboxState, invalid

__all__ = ["MailchimpSandbox", "main"]

PROBLEM_TYPE = "application/problem+json; charset=utf-8"  # [MC-ERR] A7
JSON_TYPE = "application/json; charset=utf-8"
# [mc-woocommerce#646] A7
KEY_INVALID = "Your API key may be invalid, or you've attempted to access the wrong datacenter."
FAULTS: Mapping[int, tuple[str, str]] = {
    429: ("Too Many Requests", "You have exceeded the limit of 10 simultaneous connections."),
    500: (
        "Internal Server Error",
        "An unexpected internal error has occurred. Please contact Support for more information.",
    ),
    # Mailchimp's glossary maps 503 to ComplianceRelated (A7); the sandbox uses it as a transient outage.
    503: ("Service Unavailable", "The service is temporarily unavailable. Please try again later."),
}


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
        """The body as a JSON object; ``{}`` when empty [A7: 400 JSON Parse Error]."""
        if not self.raw.strip():
            return {}
        try:
            body = json.loads(self.raw)
        except ValueError:
            raise ApiError(400, "JSON Parse Error", "We encountered an unspecified JSON parsing error.") from None
        if not isinstance(body, dict):  # wording seen in pacely/mailchimp-api-v3#17 (A6)
            raise invalid([("", f"Schema describes object, {type(body).__name__} found instead")])
        return body

    def form(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(self.raw.decode("utf-8", "replace"), keep_blank_values=True).items()}

    def count_offset(self) -> tuple[int, int]:
        """``count`` (default 10, clamped to 1000 — over-limit behaviour UNCONFIRMED) and ``offset`` [A1]."""
        try:
            count, offset = int(self.query.get("count", 10)), int(self.query.get("offset", 0))
        except ValueError:
            raise invalid([("count", "count and offset must be integers")]) from None
        return max(0, min(count, MAX_COUNT)), max(0, offset)

    def flag(self, name: str) -> bool:
        return self.query.get(name, "").lower() in ("true", "1")


@dataclass
class Response:
    status: int
    body: Any = None
    content_type: str = JSON_TYPE
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[["MailchimpSandbox", Request], Response]
_ROUTES: list[tuple[str, re.Pattern[str], Handler]] = []


def route(method: str, pattern: str) -> Callable[[Handler], Handler]:
    """Register a handler for ``method`` on paths fully matching ``pattern``."""

    def register(handler: Handler) -> Handler:
        _ROUTES.append((method, re.compile(pattern), handler))
        return handler

    return register


def ok(body: Any, status: int = 200) -> Response:
    return Response(status, body)


def problem(err: ApiError) -> Response:
    return Response(err.status, err.problem(), PROBLEM_TYPE, {"X-Request-Id": str(uuid.uuid4())})


def _seg_id(req: Request) -> int:
    try:
        return int(req.params["seg"])  # segment ids are ints [MC-SPEC] A5
    except ValueError:
        raise ApiError(404, "Resource Not Found", "The requested resource could not be found.") from None


class MailchimpSandbox(Sandbox):
    """A faithful local Mailchimp (one account, one audience) served over HTTP on a background thread.

    :param latency_ms: delay added to every API call.
    :param fail_rate: share of API calls answered 429/500/503 without touching state (seeded).
    :param seed: makes the API key, audience id and fault sequence reproducible.
    :param api_key: use this key instead of a generated ``<32 hex>-us1``.
    :param max_connections: simultaneous API requests per credential before 429 [MC-FUND] A7.
    """

    def __init__(
        self,
        *,
        latency_ms: int = 0,
        fail_rate: float = 0.0,
        seed: int | None = None,
        api_key: str | None = None,
        max_connections: int = 10,
    ) -> None:
        super().__init__(latency_ms=latency_ms, fail_rate=fail_rate, seed=seed)
        self.max_connections = max_connections
        self.status_codes: tuple[int, ...] = (429, 500, 503)
        self.requests_log: list[tuple[str, str]] = []
        self.max_in_flight = 0
        self._data = SandboxState(seed=seed, api_key=api_key)
        self._initial = (latency_ms, fail_rate)
        self._lock = threading.Lock()  # counters, faults, credentials (the data has its own lock)
        self._rng = random.Random(seed)
        self._in_flight: dict[str, int] = {}
        self._total_in_flight = 0
        self._revoked = False
        self._codes: dict[str, tuple[str, str]] = {}  # OAuth code -> (client_id, redirect_uri)
        self._tokens: set[str] = set()
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
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="mailchimp-sandbox", daemon=True
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

    def __enter__(self) -> MailchimpSandbox:
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
        return self.base_url + "/3.0"

    @property
    def api_key(self) -> str:
        return self._data.api_key

    @property
    def audience_id(self) -> str:
        return self._data.list_id

    def demo_connection(self) -> dict[str, Any]:
        return {"api_key": self.api_key, "api_base_url": self.api_base_url}

    def demo_export_options(self) -> dict[str, Any]:
        return {"audience_id": self.audience_id}

    def demo_mapping(self) -> dict[str, str]:
        return {"FNAME": "first_name", "LNAME": "last_name"}

    def summary(self) -> dict[str, Any]:
        """``{"audience", "members": {status: n}, "tags": {name: n}, "merge_fields": [tags]}``."""
        return self._data.summary()

    # -- test hooks ---------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Everything, JSON-able: lists, merge fields, members keyed by email, segments."""
        dump = self._data.dump()
        dump["revoked"] = self._revoked
        return dump

    def add_member(
        self,
        email: str,
        status: str = "subscribed",
        merge_fields: Mapping[str, Any] | None = None,
        tags: Iterable[str] = (),
    ) -> dict[str, Any]:
        """Seed a pre-existing member (any status, no rules applied); return the member object."""
        return self._data.seed_member(email, status, merge_fields, tags)

    def mark_compliance(self, email: str) -> None:
        """Put an address in compliance state: subscribing it fails "Member In Compliance State" [A8]."""
        self._data.mark_compliance(email)

    def mark_forgotten(self, email: str) -> None:
        """Permanently delete an address: re-imports fail "Forgotten Email Not Subscribed" [A8]."""
        self._data.mark_forgotten(email)

    def revoke_key(self) -> None:
        """Revoke the API key and every OAuth token: later API calls get 401 [A2]."""
        with self._lock:
            self._revoked = True
            self._tokens.clear()

    def delete_list(self) -> None:
        """Delete the audience: its routes answer 404 afterwards [A3]."""
        self._data.delete_list()

    def set_faults(
        self,
        *,
        fail_rate: float | None = None,
        latency_ms: int | None = None,
        status_codes: Sequence[int] | None = None,
    ) -> None:
        """Change fault injection; ``status_codes`` among 429, 500, 503 and 403 (403 has no body [A7])."""
        with self._lock:
            if fail_rate is not None:
                self.fail_rate = fail_rate
            if latency_ms is not None:
                self.latency_ms = latency_ms
            if status_codes is not None:
                if not status_codes or any(c not in (*FAULTS, 403) for c in status_codes):
                    raise ValueError("status_codes must be among 403, 429, 500, 503")
                self.status_codes = tuple(status_codes)

    def reset(self) -> None:
        """Back to the freshly constructed state (same key and audience id, no members)."""
        self._data.reset()
        with self._lock:
            self.latency_ms, self.fail_rate = self._initial
            self.status_codes = (429, 500, 503)
            self._rng = random.Random(self.seed)
            self._revoked = False
            self._codes.clear()
            self._tokens.clear()
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
            if req.path.startswith("/oauth2/"):
                self._sleep()
                return self._route(req)
            if req.path == "/3.0" or req.path.startswith("/3.0/"):
                return self._api(req)
            return self._route(req)
        except ApiError as err:
            return problem(err)

    def _api(self, req: Request) -> Response:
        """Connection limit, latency, faults, auth, then the handler [A7, A1]."""
        cred = req.headers.get("authorization", "")
        with self._lock:
            n = self._in_flight[cred] = self._in_flight.get(cred, 0) + 1
            self._total_in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._total_in_flight)
        try:
            if n > self.max_connections:  # max 10 simultaneous connections per user -> 429 [MC-FUND] A7
                title, _ = FAULTS[429]
                raise ApiError(
                    429,
                    title,
                    f"You have exceeded the limit of {self.max_connections} simultaneous "
                    "connections. Please try again after some connections have closed.",
                )
            self._sleep()
            fault = self._roll_fault()
            if fault == 403:
                return Response(403)  # throttling may show as 403 without a JSON body [MC-FUND] A7
            if fault is not None:
                raise ApiError(fault, *FAULTS[fault])
            self._authenticate(cred)
            return self._route(req)
        finally:
            with self._lock:
                self._total_in_flight -= 1
                self._in_flight[cred] -= 1
                if not self._in_flight[cred]:
                    del self._in_flight[cred]

    def _sleep(self) -> None:
        if self.latency_ms > 0:
            time.sleep(self.latency_ms / 1000)

    def _roll_fault(self) -> int | None:
        with self._lock:
            if self.fail_rate > 0 and self._rng.random() < self.fail_rate:
                return self._rng.choice(self.status_codes)
        return None

    def _authenticate(self, header: str) -> None:
        """Basic (any user, key as password) or Bearer <token issued here> [MC-CONV, MC-PY] A1."""
        if not header:
            # Title per the glossary's APIKeyMissing; exact title/detail UNCONFIRMED (A7).
            raise ApiError(401, "API Key Missing", "Your request did not include an API key.")
        scheme, _, value = header.partition(" ")
        with self._lock:
            if scheme.lower() == "basic":
                try:
                    _, _, key = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
                except (binascii.Error, UnicodeDecodeError):
                    key = ""
                # One key; the dc check of A9 (key dc vs host) is moot on a loopback host.
                if key == self._data.api_key and not self._revoked:
                    return
            elif scheme.lower() == "bearer" and value.strip() in self._tokens:
                return
        raise ApiError(401, "API Key Invalid", KEY_INVALID)

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
        if allowed:
            raise ApiError(
                405,
                "Method Not Allowed",
                "The requested method and resource are not compatible. See "
                "the Allow header for this resource's available methods.",
            )
        raise ApiError(404, "Resource Not Found", "The requested resource could not be found.")

    def _issue_code(self, client_id: str, redirect_uri: str) -> str:
        code = secrets.token_hex(16)
        with self._lock:
            self._codes[code] = (client_id, redirect_uri)
        return code

    def _redeem(self, code: str, client_id: str, redirect_uri: str) -> str | None:
        """Trade a code once for a token; None when unknown, reused or issued to another client."""
        with self._lock:
            issued = self._codes.pop(code, None)
            if issued != (client_id, redirect_uri):
                return None
            token = secrets.token_hex(16)
            self._tokens.add(token)
            return token

    def _token_ok(self, token: str) -> bool:
        with self._lock:
            return token in self._tokens


# -- HTTP ------------------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # listen backlog: bursts of new connections must not wait for SYN retries
    sandbox: MailchimpSandbox

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
            resp = problem(ApiError(500, "Internal Server Error", f"sandbox error: {exc!r}"))
        if resp.status == 405:
            allowed = sorted({m for m, p, _ in _ROUTES if p.fullmatch(url.path)})
            resp.headers["Allow"] = ", ".join(allowed)
        body = b"" if resp.body is None else json.dumps(resp.body, separators=(",", ":")).encode("utf-8")
        self.send_response(resp.status)
        if body:
            self.send_header("Content-Type", resp.content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in resp.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle


# -- API routes [A1-A5] ----------------------------------------------------------------------------

LIST = r"/3\.0/lists/(?P<list>[^/]+)"
MEMBER = LIST + r"/members/(?P<member>[^/]+)"
SEGMENT = LIST + r"/segments/(?P<seg>[^/]+)"


@route("GET", r"/3\.0/?")
def _root(sb: MailchimpSandbox, req: Request) -> Response:
    """API root: account details [MC-SPEC] A1."""
    data = sb._data
    subscribed = data.summary()["members"].get("subscribed", 0)
    return ok(
        {
            "account_id": data.account_id,
            "login_id": "1",
            "account_name": "Sandbox",
            "email": "owner@sandbox.example.com",
            "first_name": "Sandbox",
            "last_name": "Owner",
            "username": "sandbox",
            "role": "owner",
            "member_since": data.created,
            "pricing_plan_type": "monthly",
            "account_timezone": "UTC",
            "pro_enabled": False,
            "total_subscribers": subscribed,
            "contact": {"company": "Sandbox", "country": "US"},
            "_links": [],
        }
    )


@route("GET", r"/3\.0/ping")
def _ping(sb: MailchimpSandbox, req: Request) -> Response:
    return ok({"health_status": "Everything's Chimpy!"})  # [MC-SPEC] A1


@route("GET", r"/3\.0/lists")
def _lists(sb: MailchimpSandbox, req: Request) -> Response:
    return ok(sb._data.lists(*req.count_offset()))


@route("GET", LIST)
def _get_list(sb: MailchimpSandbox, req: Request) -> Response:
    return ok(sb._data.get_list(req.params["list"]))


@route("POST", LIST)
def _batch(sb: MailchimpSandbox, req: Request) -> Response:
    """Batch subscribe/update [MC-SPEC] A4."""
    return ok(
        sb._data.batch_subscribe(
            req.params["list"],
            req.json(),
            skip_merge_validation=req.flag("skip_merge_validation"),
            skip_duplicate_check=req.flag("skip_duplicate_check"),
        )
    )


@route("GET", LIST + "/merge-fields")
def _merge_fields(sb: MailchimpSandbox, req: Request) -> Response:
    return ok(sb._data.list_merge_fields(req.params["list"], *req.count_offset()))


@route("POST", LIST + "/merge-fields")
def _create_merge_field(sb: MailchimpSandbox, req: Request) -> Response:
    return ok(sb._data.create_merge_field(req.params["list"], req.json()))


@route("GET", LIST + "/members")
def _members(sb: MailchimpSandbox, req: Request) -> Response:
    status = req.query.get("status") or None
    if status is not None and status not in ALL_STATUSES:
        raise invalid([("status", "Value is not one of the enum values: " + ", ".join(ALL_STATUSES))])
    return ok(sb._data.list_members(req.params["list"], *req.count_offset(), status))


@route("POST", LIST + "/members")
def _create_member(sb: MailchimpSandbox, req: Request) -> Response:
    return ok(
        sb._data.create_member(req.params["list"], req.json(), skip_merge_validation=req.flag("skip_merge_validation"))
    )


@route("GET", MEMBER)
def _get_member(sb: MailchimpSandbox, req: Request) -> Response:
    return ok(sb._data.get_member(req.params["list"], req.params["member"]))


@route("PUT", MEMBER)
def _put_member(sb: MailchimpSandbox, req: Request) -> Response:
    return ok(
        sb._data.put_member(
            req.params["list"],
            req.params["member"],
            req.json(),
            skip_merge_validation=req.flag("skip_merge_validation"),
        )
    )


@route("PATCH", MEMBER)
def _patch_member(sb: MailchimpSandbox, req: Request) -> Response:
    return ok(
        sb._data.patch_member(
            req.params["list"],
            req.params["member"],
            req.json(),
            skip_merge_validation=req.flag("skip_merge_validation"),
        )
    )


@route("DELETE", MEMBER)
def _archive_member(sb: MailchimpSandbox, req: Request) -> Response:
    sb._data.archive_member(req.params["list"], req.params["member"])
    return Response(204)


@route("POST", MEMBER + "/actions/delete-permanent")
def _delete_permanent(sb: MailchimpSandbox, req: Request) -> Response:
    sb._data.delete_permanent(req.params["list"], req.params["member"])
    return Response(204)


@route("GET", MEMBER + "/tags")
def _member_tags(sb: MailchimpSandbox, req: Request) -> Response:
    return ok(sb._data.member_tags(req.params["list"], req.params["member"]))


@route("POST", MEMBER + "/tags")
def _update_member_tags(sb: MailchimpSandbox, req: Request) -> Response:
    sb._data.update_member_tags(req.params["list"], req.params["member"], req.json())
    return Response(204)  # [MC-SPEC] A5


@route("GET", LIST + "/segments")
def _segments(sb: MailchimpSandbox, req: Request) -> Response:
    return ok(sb._data.segments(req.params["list"], req.query.get("type"), *req.count_offset()))


@route("POST", LIST + "/segments")
def _create_segment(sb: MailchimpSandbox, req: Request) -> Response:
    return ok(sb._data.create_segment(req.params["list"], req.json()))


@route("GET", SEGMENT)
def _get_segment(sb: MailchimpSandbox, req: Request) -> Response:
    return ok(sb._data.get_segment(req.params["list"], _seg_id(req)))


@route("POST", SEGMENT)
def _segment_members(sb: MailchimpSandbox, req: Request) -> Response:
    return ok(sb._data.segment_members(req.params["list"], _seg_id(req), req.json()))


@route("DELETE", SEGMENT)
def _delete_segment(sb: MailchimpSandbox, req: Request) -> Response:
    sb._data.delete_segment(req.params["list"], _seg_id(req))
    return Response(204)


@route("GET", LIST + "/tag-search")
def _tag_search(sb: MailchimpSandbox, req: Request) -> Response:
    return ok(sb._data.tag_search(req.params["list"], req.query.get("name", "")))


# -- OAuth2 [A2] (at login.mailchimp.com in reality; errors are plain JSON, not problem+json) -------


def _oauth_error(status: int, error: str, description: str) -> Response:
    return Response(status, {"error": error, "error_description": description})


@route("GET", r"/oauth2/authorize")
def _authorize(sb: MailchimpSandbox, req: Request) -> Response:
    """Auto-approve and redirect to ``redirect_uri?code=…&state=…`` [MC-OAUTH] A2."""
    q = req.query
    if q.get("response_type") != "code" or not q.get("client_id") or not q.get("redirect_uri"):
        return _oauth_error(400, "invalid_request", "response_type=code, client_id and redirect_uri are required")
    params = {"code": sb._issue_code(q["client_id"], q["redirect_uri"])}
    if "state" in q:  # `state` UNCONFIRMED as documented, used by integrations (A2)
        params["state"] = q["state"]
    sep = "&" if "?" in q["redirect_uri"] else "?"
    return Response(302, headers={"Location": q["redirect_uri"] + sep + urlencode(params)})


@route("POST", r"/oauth2/token")
def _token(sb: MailchimpSandbox, req: Request) -> Response:
    """Code -> ``{"access_token", "expires_in": 0, "scope": null}``; tokens never expire [MC-OAUTH] A2."""
    form = req.form()
    if form.get("grant_type") != "authorization_code":
        return _oauth_error(400, "unsupported_grant_type", "grant_type must be authorization_code")
    if not form.get("client_id") or not form.get("client_secret"):
        return _oauth_error(401, "invalid_client", "client_id and client_secret are required")
    token = sb._redeem(form.get("code", ""), form["client_id"], form.get("redirect_uri", ""))
    if token is None:
        return _oauth_error(400, "invalid_grant", "Invalid authorization code")
    return ok({"access_token": token, "expires_in": 0, "scope": None})


@route("GET", r"/oauth2/metadata")
def _metadata(sb: MailchimpSandbox, req: Request) -> Response:
    """``Authorization: OAuth <token>`` -> dc and api_endpoint [GRP connect.ts] A1."""
    scheme, _, token = req.headers.get("authorization", "").partition(" ")
    if scheme != "OAuth" or not sb._token_ok(token.strip()):
        return _oauth_error(401, "invalid_token", "The access token is invalid or has been revoked")
    return ok(
        {
            "dc": sb._data.dc,
            "role": "owner",
            "accountname": "Sandbox",
            "user_id": 1,
            "login": {
                "email": "owner@sandbox.example.com",
                "avatar": None,
                "login_id": 1,
                "login_name": "sandbox",
                "login_email": "owner@sandbox.example.com",
            },
            "login_url": sb.base_url,
            "api_endpoint": sb.base_url,
        }
    )


# -- test/state API (no auth, faults, latency or connection counting) ------------------------------


@route("GET", r"/_sandbox/state")
def _state(sb: MailchimpSandbox, req: Request) -> Response:
    return ok(sb.state())


@route("GET", r"/_sandbox/summary")
def _summary(sb: MailchimpSandbox, req: Request) -> Response:
    return ok(sb.summary())


@route("POST", r"/_sandbox/members")
def _seed_member(sb: MailchimpSandbox, req: Request) -> Response:
    body = req.json()
    if not isinstance(body.get("email"), str):
        raise invalid([("email", "This value should not be blank.")])
    try:
        member = sb.add_member(
            body["email"],
            str(body.get("status", "subscribed")),
            body.get("merge_fields"),
            tuple(body.get("tags") or ()),
        )
    except (ValueError, TypeError, AttributeError) as err:
        raise invalid([("", str(err))]) from None
    return ok(member)


@route("POST", r"/_sandbox/faults")
def _faults(sb: MailchimpSandbox, req: Request) -> Response:
    body = req.json()
    try:
        sb.set_faults(
            fail_rate=body.get("fail_rate"), latency_ms=body.get("latency_ms"), status_codes=body.get("status_codes")
        )
    except (ValueError, TypeError) as err:
        raise invalid([("status_codes", str(err))]) from None
    return ok({"fail_rate": sb.fail_rate, "latency_ms": sb.latency_ms, "status_codes": list(sb.status_codes)})


@route("POST", r"/_sandbox/revoke")
def _revoke(sb: MailchimpSandbox, req: Request) -> Response:
    sb.revoke_key()
    return Response(204)


@route("POST", r"/_sandbox/reset")
def _reset(sb: MailchimpSandbox, req: Request) -> Response:
    sb.reset()
    return Response(204)


# -- command line ----------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Serve a sandbox until SIGINT/SIGTERM; print ``key: value`` lines describing it."""
    parser = argparse.ArgumentParser(
        prog="python -m segport_mailchimp.sandbox", description="Serve a local Mailchimp sandbox."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--fail-rate", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--api-key", default=None)
    args = parser.parse_args(argv)
    sandbox = MailchimpSandbox(
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
            ("audience_id", sandbox.audience_id),
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
