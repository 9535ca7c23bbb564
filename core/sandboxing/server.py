"""The base of every sandbox: :class:`SandboxServer`, an HTTP fake of a platform with faults and a test API.

Subclass it, register handlers on a :class:`~segport.sandboxing.routing.Router` and override the hooks
for what is platform-specific (auth, error bodies). The kit owns the HTTP/1.1 server, latency and fault
injection (:mod:`segport.sandboxing.faults`), in-flight counting, ``requests_log`` and the ``/_sandbox/``
test API (:mod:`segport.sandboxing.control`).
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any, ClassVar, Literal, Mapping, TypeVar

from .control import CONTROL, CONTROL_PREFIX
from .double import PlatformDouble, PlatformMember
from .faults import RETRY_AFTER, FaultInjection, fault_status
from .interface import Sandbox
from .messages import HttpError, Request, Response
from .routing import Router
from .serving import HttpServer

__all__ = ["Gate", "SandboxServer"]

Gate = Literal["api", "latency", "plain"]  # every gate / latency only / none (the test API passes none)
S = TypeVar("S", bound="SandboxServer")


class SandboxServer(FaultInjection, Sandbox, PlatformDouble):
    """A sandbox served by a threaded HTTP/1.1 server; subclasses set ``router`` and override the hooks.

    Requests :meth:`gates` calls ``"api"`` are counted in flight (per ``Authorization`` header, refused past
    ``max_connections``), delayed ``latency_ms``, failed at ``fail_rate`` with one of the weighted ``kinds``
    (seeded; see :mod:`segport.sandboxing.faults`), authenticated, then routed. Test-API routes
    (``/_sandbox/``) pass no gate and are not logged.

    It is also the :class:`~segport.sandboxing.double.PlatformDouble` the conformance kit drives:
    :meth:`connection`, :meth:`export_options` and :meth:`refuse` are here; a subclass implements
    ``members`` and ``seed_member``.
    """

    router: ClassVar[Router[Any]] = Router()
    thread_name: ClassVar[str] = "sandbox"
    max_connections: int | None = None

    def __init__(self, *, latency_ms: int = 0, fail_rate: float = 0.0, seed: int | None = None) -> None:
        super().__init__(latency_ms=latency_ms, fail_rate=fail_rate, seed=seed)
        self._lock = threading.RLock()  # counters, faults, credentials
        self._init_faults()
        self.requests_log: list[tuple[str, str]] = []
        self.max_in_flight = 0
        self.revoked = False
        self._in_flight: dict[str, int] = {}
        self._total_in_flight = 0
        self._server: HttpServer | None = None
        self._thread: threading.Thread | None = None
        self._base_url: str | None = None

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve in a background thread; return the base URL ``http://host:port``."""
        if self._server is not None:
            raise RuntimeError("sandbox already started")
        server = self._server = HttpServer((host, port), self)
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
        """The running sandbox's base URL (``RuntimeError`` before :meth:`start`)."""
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

    def rotate_key(self) -> str:
        """Issue a new API key of the same account and refuse the old one (a key rotation); return the new key.

        A sandbox with API keys overrides it; the default says it has none to rotate.
        """
        raise self.invalid_input("rotate", "this sandbox has no API key to rotate")

    def busy(self) -> bool:
        """Whether work is under way besides calls in flight (e.g. queued batch jobs); default: no."""
        return False

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until no API call is in flight (held ``timeout`` faults included) and :meth:`busy` is false."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                idle = self._total_in_flight == 0 and not self.busy()
            if idle or time.monotonic() >= deadline:
                return idle
            time.sleep(0.02)

    def reset(self) -> None:
        """Faults, latency, seed, revocation, logs and counters back to how they were constructed (or kept)."""
        with self._lock:
            self._reset_faults()
            self.revoked = False
            self.requests_log.clear()
            self.max_in_flight = 0

    # -- the conformance kit's double (PlatformDouble) --------------------------------------------------

    def connection(self) -> dict[str, Any]:
        """Return the demo connection: a valid config for this running sandbox."""
        return self.demo_connection()

    def export_options(self) -> dict[str, Any]:
        """Return the demo export options: the sandbox's audience/list."""
        return self.demo_export_options()

    def members(self) -> list[PlatformMember]:
        """Everyone in the sandbox's audience/list: a subclass implements it for the conformance kit."""
        raise NotImplementedError(f"{type(self).__name__}.members(): implement it for the conformance kit")

    def seed_member(self, email: str, fields: Mapping[str, Any]) -> None:
        """Store a pre-existing person: a subclass implements it for the conformance kit."""
        raise NotImplementedError(f"{type(self).__name__}.seed_member(): implement it for the conformance kit")

    def refuse(self, email: str) -> None:
        """Batch calls refuse ``email`` from now on, as the platform's per-member error (until :meth:`reset`)."""
        with self._lock:
            self.refused.add(email.strip().lower())

    # -- hooks for the platform-specific parts --------------------------------------------------------

    def gates(self, path: str) -> Gate:
        """Which gates a request outside the test API passes; default: every one."""
        return "api"

    def authenticate(self, req: Request) -> None:
        """Raise to refuse an API request; default: accept."""

    def fault_response(self, status: int, *, over_limit: bool = False) -> Response:
        """Return an injected fault's answer, or (``over_limit``) the 429 past ``max_connections``."""
        return Response(status, {"status": status})

    def no_route(self, req: Request, status: Literal[404, 405]) -> Response:
        """No route for the path (404) or not for this method (405; the kit adds ``Allow``)."""
        return Response(status, {"status": status})

    def bad_json(self, found: str | None) -> Exception:
        """Return the error for a body that is not JSON (``found`` None) or not an object (its type name)."""
        return HttpError(400, {"error": "malformed JSON" if found is None else f"expected an object, got {found}"})

    def invalid_input(self, name: str, message: str) -> Exception:
        """Return the error for a bad test-API argument."""
        return HttpError(400, {"field": name, "message": message})

    def render_error(self, exc: Exception) -> Response:
        """Any exception raised while answering, as a response (an unexpected one: 500)."""
        if isinstance(exc, HttpError):
            return Response(exc.status, exc.body)
        return Response(500, {"error": f"sandbox error: {exc!r}"})

    def encode_body(self, req: Request, body: Any) -> bytes:
        """Encode a JSON body as bytes."""
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
                self.log_fault("over-limit", req)
                return self.fault_response(429, over_limit=True)
            self._sleep()
            kind = self.roll_fault(req)
            if kind is None:
                return self._answer(req)
            self.log_fault(kind, req)
            return self._inject(kind, req)
        finally:
            with self._lock:
                self._total_in_flight -= 1
                self._in_flight[key] -= 1
                if not self._in_flight[key]:
                    del self._in_flight[key]

    def _inject(self, kind: str, req: Request) -> Response:
        """Answer ``req`` with fault ``kind``."""
        status = fault_status(kind)
        if status is not None:
            resp = self.fault_response(status)
            if kind == RETRY_AFTER:
                resp.headers["Retry-After"] = str(self.retry_after_s)
            return resp
        if kind == "reset":  # nothing applied
            return Response(0, drop="reset")
        if kind in ("timeout", "slow"):
            time.sleep(self.hold_s if kind == "timeout" else self.slow_ms / 1000)
        resp = self._answer(req)
        if kind == "reset-applied":
            resp.drop = "reset"
        elif kind == "cut":
            resp.drop = "cut"
        return resp

    def _answer(self, req: Request) -> Response:
        """Authenticate and route (errors rendered)."""
        try:
            self.authenticate(req)
            return self._dispatch(req)
        except Exception as exc:
            return self.render_error(exc)

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
