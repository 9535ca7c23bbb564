"""A kit for local API sandboxes (:class:`segport.Sandbox` implementations), standard library only.

Subclass :class:`SandboxServer`, register handlers on a :class:`Router` and override the hooks for what is
platform-specific (auth, error bodies). The kit owns the HTTP/1.1 server, latency and fault injection,
in-flight counting, ``requests_log`` and the ``/_sandbox/`` test API (state, summary, faults, revoke,
reset); :func:`serve_main` turns a sandbox into a command line.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import signal
import socket
import socketserver
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any, Callable, ClassVar, Generic, Iterable, Literal, Mapping, Sequence, TypeVar
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

from ..contract import Sandbox

__all__ = ["JSON_TYPE", "Gate", "HttpError", "Request", "Response", "Router", "SandboxServer", "redirect", "serve_main"]

JSON_TYPE = "application/json; charset=utf-8"
CONTROL_PREFIX = "/_sandbox/"
Gate = Literal["api", "latency", "plain"]  # every gate / latency only / none (the test API passes none)
S = TypeVar("S", bound="SandboxServer")


class HttpError(Exception):
    """Answered as ``status`` with a JSON ``body`` by the default :meth:`SandboxServer.render_error`."""

    def __init__(self, status: int, body: Any = None) -> None:
        super().__init__(f"{status}: {body!r}")
        self.status, self.body = status, body


@dataclass
class Request:
    """One parsed HTTP request: ``headers`` have lower-cased names, ``params`` are the route's groups."""

    method: str
    path: str
    query: dict[str, str]
    body: bytes
    headers: Mapping[str, str]
    params: dict[str, str] = field(default_factory=dict)
    bad_json: Callable[[str | None], Exception] = field(default=lambda found: HttpError(400), repr=False)

    def json(self) -> dict[str, Any]:
        """The body as a JSON object, ``{}`` when empty; raises ``bad_json(None)`` or ``bad_json(type name)``."""
        if not self.body.strip():
            return {}
        try:
            doc = json.loads(self.body)
        except ValueError:
            raise self.bad_json(None) from None
        if not isinstance(doc, dict):
            raise self.bad_json(type(doc).__name__)
        return doc

    def form(self) -> dict[str, str]:
        """The body as a url-encoded form (last value wins)."""
        return _last(self.body.decode("utf-8", "replace"))

    def flag(self, name: str) -> bool:
        """Whether query parameter ``name`` is ``true`` or ``1``."""
        return self.query.get(name, "").lower() in ("true", "1")


@dataclass
class Response:
    """A status with a JSON ``body`` (None: empty) or ``raw`` bytes, plus extra headers."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = JSON_TYPE
    raw: bytes | None = None


Handler = Callable[[S, Request], Response]


class Router(Generic[S]):
    """``(method, regex) -> handler``; a regex matches the whole path, its named groups become ``params``."""

    def __init__(self) -> None:
        self.routes: list[tuple[str, re.Pattern[str], Handler[S]]] = []

    def route(self, method: str, pattern: str) -> Callable[[Handler[S]], Handler[S]]:
        """Decorator: register a handler for ``method`` on paths fully matching ``pattern``."""

        def register(handler: Handler[S]) -> Handler[S]:
            self.routes.append((method, re.compile(pattern), handler))
            return handler

        return register

    def resolve(self, method: str, path: str) -> tuple[Handler[S] | None, dict[str, str], list[str]]:
        """The handler and its unquoted params, or None and the methods the path allows (none: 404)."""
        allowed: list[str] = []
        for verb, pattern, handler in self.routes:
            if (match := pattern.fullmatch(path)) is not None:
                if verb == method:
                    return handler, {k: unquote(v) for k, v in match.groupdict().items()}, []
                allowed.append(verb)
        return None, {}, allowed


class SandboxServer(Sandbox):
    """A sandbox served by a threaded HTTP/1.1 server; subclasses set ``router`` and override the hooks.

    Requests :meth:`gates` calls ``"api"`` are counted in flight (per ``Authorization`` header, refused past
    ``max_connections``), delayed ``latency_ms``, failed at ``fail_rate`` with one of ``status_codes`` (seeded),
    authenticated, then routed. Test-API routes (``/_sandbox/``) pass no gate and are not logged.
    """

    router: ClassVar[Router[Any]] = Router()
    thread_name: ClassVar[str] = "sandbox"
    fault_codes: ClassVar[tuple[int, ...]] = (429, 500, 503)  # what set_faults accepts
    default_status_codes: ClassVar[tuple[int, ...]] = (429, 500, 503)
    max_connections: int | None = None

    def __init__(self, *, latency_ms: int = 0, fail_rate: float = 0.0, seed: int | None = None) -> None:
        super().__init__(latency_ms=latency_ms, fail_rate=fail_rate, seed=seed)
        self.status_codes = self.default_status_codes
        self.requests_log: list[tuple[str, str]] = []
        self.max_in_flight = 0
        self.revoked = False
        self._initial = (latency_ms, fail_rate)
        self._lock = threading.RLock()  # counters, faults, credentials
        self._rng = random.Random(seed)
        self._in_flight: dict[str, int] = {}
        self._total_in_flight = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._base_url: str | None = None

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve in a background thread; return the base URL ``http://host:port``."""
        if self._server is not None:
            raise RuntimeError("sandbox already started")
        server = self._server = _Server((host, port), _RequestHandler)
        server.sandbox = self
        self._base_url = f"http://{host}:{server.server_address[1]}"
        kwargs = {"poll_interval": 0.05}
        self._thread = threading.Thread(target=server.serve_forever, kwargs=kwargs, name=self.thread_name, daemon=True)
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

    def __enter__(self: S) -> S:
        if self._server is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise RuntimeError("sandbox not started")
        return self._base_url

    # -- test hooks, also served under /_sandbox/ -----------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Everything, JSON-able; subclasses add their data."""
        with self._lock:
            return {"revoked": self.revoked}

    def revoke_key(self) -> None:
        """Revoke the credentials (``revoked``); subclasses also drop their tokens."""
        with self._lock:
            self.revoked = True

    def set_faults(
        self,
        *,
        fail_rate: float | None = None,
        latency_ms: int | None = None,
        status_codes: Sequence[int] | None = None,
    ) -> None:
        """Change fault injection; ``status_codes`` must be among ``fault_codes`` (else ValueError)."""
        with self._lock:
            if status_codes is not None:
                if not status_codes or any(c not in self.fault_codes for c in status_codes):
                    raise ValueError("status_codes must be among " + ", ".join(map(str, sorted(self.fault_codes))))
                self.status_codes = tuple(status_codes)
            if fail_rate is not None:
                self.fail_rate = float(fail_rate)
            if latency_ms is not None:
                self.latency_ms = int(latency_ms)

    def reset(self) -> None:
        """Faults, latency, seed, revocation, log and counters back to how they were constructed."""
        with self._lock:
            self.latency_ms, self.fail_rate = self._initial
            self.status_codes = self.default_status_codes
            self._rng = random.Random(self.seed)
            self.revoked = False
            self.requests_log.clear()
            self.max_in_flight = 0

    # -- hooks for the platform-specific parts --------------------------------------------------------

    def gates(self, path: str) -> Gate:
        """Which gates a request outside the test API passes; default: every one."""
        return "api"

    def authenticate(self, req: Request) -> None:
        """Raise to refuse an API request; default: accept."""

    def fault_response(self, status: int, *, over_limit: bool = False) -> Response:
        """An injected fault, or (``over_limit``) the 429 past ``max_connections``."""
        return Response(status, {"status": status})

    def no_route(self, req: Request, status: Literal[404, 405]) -> Response:
        """No route for the path (404) or not for this method (405; the kit adds ``Allow``)."""
        return Response(status, {"status": status})

    def bad_json(self, found: str | None) -> Exception:
        """The error for a body that is not JSON (``found`` None) or not an object (its type name)."""
        return HttpError(400, {"error": "malformed JSON" if found is None else f"expected an object, got {found}"})

    def invalid_input(self, name: str, message: str) -> Exception:
        """The error for a bad test-API argument."""
        return HttpError(400, {"field": name, "message": message})

    def render_error(self, exc: Exception) -> Response:
        """Any exception raised while answering, as a response (an unexpected one: 500)."""
        if isinstance(exc, HttpError):
            return Response(exc.status, exc.body)
        return Response(500, {"error": f"sandbox error: {exc!r}"})

    def encode_body(self, req: Request, body: Any) -> bytes:
        return json.dumps(body, separators=(",", ":")).encode("utf-8")

    # -- request pipeline -----------------------------------------------------------------------------

    def respond(self, req: Request) -> Response:
        """Answer one request: the test API as is, the rest logged and through its :meth:`gates`."""
        try:
            if req.path.startswith(CONTROL_PREFIX):
                return self._dispatch(req)
            with self._lock:
                self.requests_log.append((req.method, req.path))
            gate = self.gates(req.path)
            if gate == "api":
                return self._api(req)
            if gate == "latency":
                self._sleep()
            return self._dispatch(req)
        except Exception as exc:
            return self.render_error(exc)

    def _api(self, req: Request) -> Response:
        key = req.headers.get("authorization", "")
        with self._lock:
            n = self._in_flight[key] = self._in_flight.get(key, 0) + 1
            self._total_in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._total_in_flight)
        try:
            if self.max_connections is not None and n > self.max_connections:
                return self.fault_response(429, over_limit=True)
            self._sleep()
            with self._lock:
                roll = self.fail_rate > 0 and self._rng.random() < self.fail_rate
                fault = self._rng.choice(self.status_codes) if roll else None
            if fault is not None:
                return self.fault_response(fault)
            self.authenticate(req)
            return self._dispatch(req)
        finally:
            with self._lock:
                self._total_in_flight -= 1
                self._in_flight[key] -= 1
                if not self._in_flight[key]:
                    del self._in_flight[key]

    def _sleep(self) -> None:
        if self.latency_ms > 0:
            time.sleep(self.latency_ms / 1000)

    def _dispatch(self, req: Request) -> Response:
        allowed: list[str] = []
        for router in (self.router, CONTROL):
            handler, req.params, more = router.resolve(req.method, req.path)
            if handler is not None:
                return handler(self, req)
            allowed += more
        if not allowed:
            return self.no_route(req, 404)
        resp = self.no_route(req, 405)
        resp.headers["Allow"] = ", ".join(sorted(set(allowed)))
        return resp


def redirect(uri: str, params: Mapping[str, str]) -> Response:
    """A 302 to ``uri`` with ``params`` added to its query (e.g. an OAuth ``code`` and ``state``)."""
    return Response(302, headers={"Location": uri + ("&" if "?" in uri else "?") + urlencode(params)})


# -- the shared test API ---------------------------------------------------------------------------------

CONTROL: Router[SandboxServer] = Router()
CONTROL.route("GET", CONTROL_PREFIX + "state")(lambda sb, req: Response(200, sb.state()))
CONTROL.route("GET", CONTROL_PREFIX + "summary")(lambda sb, req: Response(200, sb.summary()))


@CONTROL.route("POST", CONTROL_PREFIX + "faults")
def _faults(sb: SandboxServer, req: Request) -> Response:
    body = req.json()
    try:
        sb.set_faults(
            fail_rate=body.get("fail_rate"), latency_ms=body.get("latency_ms"), status_codes=body.get("status_codes")
        )
    except (ValueError, TypeError) as err:
        raise sb.invalid_input("status_codes", str(err)) from None
    return Response(200, {"fail_rate": sb.fail_rate, "latency_ms": sb.latency_ms, "status_codes": [*sb.status_codes]})


@CONTROL.route("POST", CONTROL_PREFIX + "(?P<action>revoke|reset)")
def _revoke_or_reset(sb: SandboxServer, req: Request) -> Response:
    sb.revoke_key() if req.params["action"] == "revoke" else sb.reset()
    return Response(204)


# -- HTTP ---------------------------------------------------------------------------------------------------


def _last(query: str) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}


class _Server(ThreadingHTTPServer):
    daemon_threads = allow_reuse_address = True
    request_queue_size = 128  # listen backlog: bursts of new connections must not wait for SYN retries
    sandbox: SandboxServer

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
        sandbox, url = self.server.sandbox, urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        req = Request(self.command, url.path, _last(url.query), raw, headers, bad_json=sandbox.bad_json)
        try:
            resp = sandbox.respond(req)
            body = (
                resp.raw if resp.raw is not None else b"" if resp.body is None else sandbox.encode_body(req, resp.body)
            )
        except Exception:  # a hook failed: answer 500 rather than drop the connection
            resp, body = Response(500), b""
        self.send_response(resp.status)
        if body:
            self.send_header("Content-Type", resp.content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in resp.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle


def serve_main(
    factory: Callable[..., S],
    describe: Callable[[S], Iterable[tuple[str, object]]],
    argv: Sequence[str] | None = None,
    prog: str | None = None,
    *,
    description: str | None = None,
    options: Sequence[str] = (),
) -> int:
    """Serve ``factory(latency_ms=, fail_rate=, seed=, **options)`` until SIGINT/SIGTERM; print ``base_url`` and
    ``describe(sandbox)`` as ``key: value`` lines. ``options`` are extra string ``--flags`` (default None)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--host", default="127.0.0.1")
    for flag, kind, default in (("--port", int, 0), ("--latency-ms", int, 0), ("--fail-rate", float, 0.0)):
        parser.add_argument(flag, type=kind, default=default)
    parser.add_argument("--seed", type=int, default=None)
    for flag in options:
        parser.add_argument(flag, default=None)
    args = vars(parser.parse_args(argv))
    host, port = args.pop("host"), args.pop("port")
    sandbox, stop = factory(**args), threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        lines = [("base_url", sandbox.start(host, port)), *describe(sandbox)]
        print("\n".join(f"{key}: {value}" for key, value in lines), flush=True)
        while not stop.wait(0.2):
            pass
    finally:
        sandbox.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
