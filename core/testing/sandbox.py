"""A kit for local API sandboxes (:class:`segport.Sandbox` implementations), standard library only.

Subclass :class:`SandboxServer`, register handlers on a :class:`Router` and override the hooks for what is
platform-specific (auth, error bodies). The kit owns the HTTP/1.1 server, latency and fault injection,
in-flight counting, ``requests_log`` and the ``/_sandbox/`` test API (state, summary, faults, refuse, revoke,
reset); :func:`serve_main` turns a sandbox into a command line.

Faults are drawn per API call by the seeded RNG at ``fail_rate``, among weighted ``kinds``: a status code
of ``fault_codes`` (as a string: ``"503"``), ``429-retry-after`` (a 429 with ``Retry-After:
retry_after_s``; neither platform documents the header, so plain ``429`` has none), ``reset`` (the
request is read, then the connection is reset without an answer: nothing applied), ``reset-applied``
(the platform applies the request, then resets: the client cannot know it landed), ``cut`` (applied, the
answer's headers and half its body sent, then the connection closed), ``timeout`` (held ``hold_s``, longer
than a client's read timeout, then applied and answered to nobody) and ``slow`` (``slow_ms`` extra, then
answered normally). ``member_fail_rate`` picks addresses (by a seeded hash, so the same ones on every call)
that batch calls refuse as per-member errors; each plugin decides the platform's documented form.
``fault_filter`` (a regular expression searched in ``"METHOD /path"``, or ``"op METHOD /path"`` for an
operation a batch job runs) limits all of it to matching calls;
``fail_next`` fails that many of the next (matching) calls whatever ``fail_rate`` says.
Every injected fault is logged in ``fault_log``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import random
import re
import signal
import socket
import socketserver
import struct
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any, Callable, ClassVar, Generic, Iterable, Literal, Mapping, NamedTuple, Sequence, TypeVar
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

from ..contract import Sandbox
from .double import PlatformDouble, PlatformMember

__all__ = [
    "FAULT_KINDS",
    "JSON_TYPE",
    "RETRY_AFTER",
    "FaultEvent",
    "FaultSettingError",
    "Gate",
    "HttpError",
    "Request",
    "Response",
    "Router",
    "SandboxServer",
    "WatchedWrites",
    "parse_kinds",
    "redirect",
    "serve_main",
]

JSON_TYPE = "application/json; charset=utf-8"
CONTROL_PREFIX = "/_sandbox/"
Gate = Literal["api", "latency", "plain"]  # every gate / latency only / none (the test API passes none)
S = TypeVar("S", bound="SandboxServer")
RETRY_AFTER = "429-retry-after"
FAULT_KINDS = (RETRY_AFTER, "reset", "reset-applied", "cut", "timeout", "slow")  # besides the status codes
Drop = Literal["reset", "cut"]


class FaultEvent(NamedTuple):
    """One injected fault: its kind (or ``over-limit``, ``member``), the call, and whether it hit an
    operation run inside a batch job rather than a call."""

    kind: str
    method: str
    path: str
    operation: bool = False


class FaultSettingError(ValueError):
    """A fault setting out of range; ``name`` is the setting, ``detail`` what is wrong with it."""

    def __init__(self, name: str, detail: str) -> None:
        super().__init__(f"{name}: {detail}")
        self.name, self.detail = name, detail


def parse_kinds(text: str) -> dict[str, float]:
    """``"503,reset=2,timeout=0.5"`` -> ``{"503": 1.0, "reset": 2.0, "timeout": 0.5}`` (weight 1 by default)."""
    kinds: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, weight = item.partition("=")
        try:
            kinds[name.strip()] = float(weight) if weight else 1.0
        except ValueError:
            raise FaultSettingError("kinds", f"weight of {name.strip()!r} is not a number: {weight!r}") from None
    return kinds


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
    """A status with a JSON ``body`` (None: empty) or ``raw`` bytes, plus extra headers.

    ``drop`` (set by fault injection): ``reset`` closes the connection with a TCP reset instead of
    answering; ``cut`` sends the headers and half the body, then closes the connection.
    """

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = JSON_TYPE
    raw: bytes | None = None
    drop: Drop | None = None


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


class SandboxServer(Sandbox, PlatformDouble):
    """A sandbox served by a threaded HTTP/1.1 server; subclasses set ``router`` and override the hooks.

    Requests :meth:`gates` calls ``"api"`` are counted in flight (per ``Authorization`` header, refused past
    ``max_connections``), delayed ``latency_ms``, failed at ``fail_rate`` with one of the weighted ``kinds``
    (seeded; see the module docstring), authenticated, then routed. Test-API routes (``/_sandbox/``) pass no
    gate and are not logged.

    It is also the :class:`~segport.testing.double.PlatformDouble` the conformance kit drives:
    :meth:`connection`, :meth:`export_options` and :meth:`refuse` are here; a subclass implements
    ``members`` and ``seed_member``.
    """

    router: ClassVar[Router[Any]] = Router()
    thread_name: ClassVar[str] = "sandbox"
    fault_codes: ClassVar[tuple[int, ...]] = (429, 500, 503)  # the status kinds set_faults accepts
    default_status_codes: ClassVar[tuple[int, ...]] = (429, 500, 503)
    max_connections: int | None = None

    def __init__(self, *, latency_ms: int = 0, fail_rate: float = 0.0, seed: int | None = None) -> None:
        super().__init__(latency_ms=latency_ms, fail_rate=fail_rate, seed=seed)
        self.kinds: dict[str, float] = dict.fromkeys(map(str, self.default_status_codes), 1.0)
        self.hold_s = 2.0  # a ``timeout`` fault holds the call this long
        self.slow_ms = 300  # a ``slow`` fault adds this delay
        self.retry_after_s = 1  # the Retry-After of a ``429-retry-after`` fault
        self.member_fail_rate = 0.0  # share of addresses batch calls refuse as per-member errors
        self.fault_filter = ""  # faults only on calls whose "METHOD /path" this regex finds ("": every call)
        self.fail_next = 0  # the next this many (targeted) calls fail, then fail_rate decides again
        self.refused: set[str] = set()  # addresses batch calls always refuse (normalised), see refuse()
        self.requests_log: list[tuple[str, str]] = []
        self.fault_log: list[FaultEvent] = []
        self.max_in_flight = 0
        self.revoked = False
        self._initial: dict[str, Any] = self.fault_settings()
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

    @property
    def status_codes(self) -> tuple[int, ...]:
        """The status codes among the fault ``kinds``."""
        return tuple(int(kind) for kind in self.kinds if kind.isdigit())

    def fault_settings(self) -> dict[str, Any]:
        """Every fault setting, JSON-able (what ``GET /_sandbox/faults`` shows)."""
        return {
            "fail_rate": self.fail_rate,
            "latency_ms": self.latency_ms,
            "status_codes": [*self.status_codes],
            "kinds": dict(self.kinds),
            "hold_s": self.hold_s,
            "slow_ms": self.slow_ms,
            "retry_after_s": self.retry_after_s,
            "member_fail_rate": self.member_fail_rate,
            "fault_filter": self.fault_filter,
            "fail_next": self.fail_next,
        }

    def set_faults(
        self,
        *,
        fail_rate: float | None = None,
        latency_ms: int | None = None,
        status_codes: Sequence[int] | None = None,
        kinds: Mapping[str, float] | Sequence[str] | None = None,
        hold_s: float | None = None,
        slow_ms: int | None = None,
        retry_after_s: int | None = None,
        member_fail_rate: float | None = None,
        fault_filter: str | None = None,
        fail_next: int | None = None,
        keep: bool = False,
    ) -> None:
        """Change fault injection (None: unchanged); with ``keep``, :meth:`reset` restores these settings.

        ``status_codes`` (equal weights) and ``kinds`` (names, or names with weights) both replace the kinds;
        names are ``fault_codes`` as strings and :data:`FAULT_KINDS`. Raises :class:`FaultSettingError`.
        """
        with self._lock:
            if status_codes is not None:
                if not status_codes or any(c not in self.fault_codes for c in status_codes):
                    raise FaultSettingError(
                        "status_codes", "must be among " + ", ".join(map(str, sorted(self.fault_codes)))
                    )
                self.kinds = dict.fromkeys(map(str, status_codes), 1.0)
            if kinds is not None:
                self.kinds = self._checked_kinds(kinds)
            if fault_filter is not None:
                self.fault_filter = _checked_pattern(fault_filter)
            for name, value, low, high in (
                ("fail_rate", fail_rate, 0.0, 1.0),
                ("member_fail_rate", member_fail_rate, 0.0, 1.0),
                ("hold_s", hold_s, 0.0, 600.0),
                ("slow_ms", slow_ms, 0, 600_000),
                ("latency_ms", latency_ms, 0, 600_000),
                ("retry_after_s", retry_after_s, 0, 3600),
                ("fail_next", fail_next, 0, 1_000_000),
            ):
                if value is not None:
                    checked = _in_range(name, value, low, high)
                    setattr(self, name, int(checked) if isinstance(low, int) else float(checked))
            if keep:
                self._initial = self.fault_settings()

    def _checked_kinds(self, kinds: Mapping[str, float] | Sequence[str]) -> dict[str, float]:
        weights = dict(kinds) if isinstance(kinds, Mapping) else dict.fromkeys(kinds, 1.0)
        known = (*map(str, self.fault_codes), *FAULT_KINDS)
        unknown = [str(k) for k in weights if k not in known]
        if unknown:
            raise FaultSettingError("kinds", f"unknown {', '.join(unknown)}; known: {', '.join(known)}")
        checked = {str(k): _in_range(f"kinds.{k}", w, 0.0, 1e6) for k, w in weights.items()}
        if not any(checked.values()):
            raise FaultSettingError("kinds", "give at least one kind a weight above 0")
        return checked

    def fault_counts(self) -> dict[str, int]:
        """How many faults of each kind were injected (``over-limit`` and ``member`` included)."""
        with self._lock:
            counts: dict[str, int] = {}
            for event in self.fault_log:
                counts[event.kind] = counts.get(event.kind, 0) + 1
            return counts

    def member_fault(self, email: str) -> bool:
        """Whether batch calls refuse ``email`` now: one :meth:`refuse` named, or a seeded hash of the address
        under ``member_fail_rate``, so the same addresses on every call and the expected state is computable."""
        if email.strip().lower() in self.refused:
            return True
        rate = self.member_fail_rate
        if rate <= 0:
            return False
        digest = hashlib.blake2b(f"{self.seed}|{email.strip().lower()}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") < rate * 2**64

    def member_faults(self, req: Request) -> Callable[[str], bool]:
        """:meth:`member_fault` for the handler of one batch call, logging each refusal as a ``member`` fault."""
        targeted = self.targets(req)

        def refuse(email: str) -> bool:
            if not targeted or not self.member_fault(email):
                return False
            with self._lock:
                self.fault_log.append(FaultEvent("member", req.method, req.path))
            return True

        return refuse

    def targets(self, req: Request, *, operation: bool = False) -> bool:
        """Whether ``fault_filter`` lets faults hit ``req`` (an ``operation`` of a batch job: ``op METHOD /path``)."""
        call = f"{'op ' if operation else ''}{req.method} {req.path}"
        return not self.fault_filter or re.search(self.fault_filter, call) is not None

    def roll_fault(self, req: Request, *, operation: bool = False) -> str | None:
        """Draw whether ``req`` fails (forced by ``fail_next``, else at ``fail_rate``) and how (weighted ``kinds``);
        None: it does not.

        Calls :meth:`targets` refuses draw nothing. An ``operation`` of a batch job, which has no connection of
        its own, draws among the status kinds only (``429-retry-after`` counts as 429).
        """
        if not self.targets(req, operation=operation):
            return None
        with self._lock:
            if self.fail_next > 0:
                self.fail_next -= 1
            elif not (self.fail_rate > 0 and self._rng.random() < self.fail_rate):
                return None
            kinds = {k: w for k, w in self.kinds.items() if w > 0 and (not operation or _fault_status(k))}
            if not kinds:
                return None
            names = list(kinds)
            if len(set(kinds.values())) == 1:  # equal weights: the draw of the kit's first versions
                return self._rng.choice(names)
            return self._rng.choices(names, weights=list(kinds.values()))[0]

    def log_fault(self, kind: str, req: Request, *, operation: bool = False) -> None:
        """Record one injected fault in ``fault_log``."""
        with self._lock:
            self.fault_log.append(FaultEvent(kind, req.method, req.path, operation))

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
            for name, value in self._initial.items():
                if name != "status_codes":
                    setattr(self, name, dict(value) if isinstance(value, dict) else value)
            self._rng = random.Random(self.seed)
            self.revoked = False
            self.refused.clear()
            self.requests_log.clear()
            self.fault_log.clear()
            self.max_in_flight = 0

    # -- the conformance kit's double (PlatformDouble) --------------------------------------------------

    def connection(self) -> dict[str, Any]:
        """The demo connection: a valid config for this running sandbox."""
        return self.demo_connection()

    def export_options(self) -> dict[str, Any]:
        """The demo export options: the sandbox's audience/list."""
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
        status = _fault_status(kind)
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


class WatchedWrites(SandboxServer):
    """A sandbox counting who each write call carries and acting on the Nth one (crash and fleet tests).

    A subclass names its platform's write call in :meth:`written` (the addresses a request carries, or
    None for any other request). When write number ``act_at`` arrives (after latency, before it is
    authenticated and applied), ``action()`` runs, then the call goes on as usual; with ``drain``, the
    writes before it are answered first. Later writes wait for the action, so exactly ``act_at - 1``
    come before it. ``sent[phase]`` counts the addresses written per ``phase`` (e.g. 1: a broken run,
    2: the next one); ``writes`` counts the write calls.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.phase = 1
        self.sent: dict[int, Counter[str]] = defaultdict(Counter)
        self.writes = 0
        self.answered = 0
        self.act_at = 0
        self.drain = False
        self.action: Callable[[], None] = lambda: None
        self.acted = threading.Event()
        self.active = 0
        self.watch = threading.Lock()

    def written(self, req: Request) -> list[str] | None:
        """The addresses ``req`` writes, when it is the platform's write call; None otherwise."""
        raise NotImplementedError(f"{type(self).__name__}.written(): name the platform's write call")

    def respond(self, req: Request) -> Response:
        with self.watch:
            self.active += 1
        try:
            return super().respond(req)
        finally:
            with self.watch:
                self.active -= 1
                self.answered += self.written(req) is not None

    def authenticate(self, req: Request) -> None:
        addresses = self.written(req)
        if addresses is not None:
            with self.watch:
                self.writes += 1
                number = self.writes
                self.sent[self.phase].update(a.lower() for a in addresses)
            if number == self.act_at:
                deadline = time.monotonic() + 30
                while self.drain and self.answered < number - 1 and time.monotonic() < deadline:
                    time.sleep(0.005)
                self.action()
                self.acted.set()
            elif number > self.act_at > 0:
                self.acted.wait(30)
        super().authenticate(req)

    def settle(self, timeout: float = 30) -> None:
        """Wait until no request has been answered or started for 0.5 s (a killed client's calls
        still land, some read from the socket only after the kill)."""
        deadline = time.monotonic() + timeout
        quiet_since, seen = time.monotonic(), (self.active, self.writes)
        while time.monotonic() < deadline:
            time.sleep(0.02)
            now = (self.active, self.writes)
            if now != seen or self.active:
                quiet_since, seen = time.monotonic(), now
            elif time.monotonic() - quiet_since >= 0.5:
                return
        raise AssertionError("the sandbox is still answering requests")


def redirect(uri: str, params: Mapping[str, str]) -> Response:
    """A 302 to ``uri`` with ``params`` added to its query (e.g. an OAuth ``code`` and ``state``)."""
    return Response(302, headers={"Location": uri + ("&" if "?" in uri else "?") + urlencode(params)})


def _fault_status(kind: str) -> int | None:
    """The status a fault kind answers with; None for the connection-level kinds."""
    if kind == RETRY_AFTER:
        return 429
    return int(kind) if kind.isdigit() else None


def _checked_pattern(pattern: Any) -> str:
    if not isinstance(pattern, str):
        raise FaultSettingError("fault_filter", f"must be a regular expression, not {type(pattern).__name__}")
    try:
        re.compile(pattern)
    except re.error as err:
        raise FaultSettingError("fault_filter", f"not a regular expression: {err}") from None
    return pattern


def _in_range(name: str, value: Any, low: float, high: float) -> Any:
    """``value`` (an int or float, not a bool) when ``low <= value <= high``, else FaultSettingError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FaultSettingError(name, f"must be a number, not {type(value).__name__}")
    if not low <= value <= high:
        raise FaultSettingError(name, f"{value} is not between {low:g} and {high:g}")
    return value


# -- the shared test API ---------------------------------------------------------------------------------

CONTROL: Router[SandboxServer] = Router()
CONTROL.route("GET", CONTROL_PREFIX + "state")(lambda sb, req: Response(200, sb.state()))
CONTROL.route("GET", CONTROL_PREFIX + "summary")(lambda sb, req: Response(200, sb.summary()))


FAULT_SETTINGS = (
    "fail_rate",
    "latency_ms",
    "status_codes",
    "kinds",
    "hold_s",
    "slow_ms",
    "retry_after_s",
    "member_fail_rate",
    "fault_filter",
    "fail_next",
)


@CONTROL.route("POST", CONTROL_PREFIX + "faults")
def _faults(sb: SandboxServer, req: Request) -> Response:
    """Change fault settings (those named in the body); answer the three classic ones (GET shows all)."""
    body = req.json()
    settings = {name: body.get(name) for name in (*FAULT_SETTINGS, "keep")}
    try:
        sb.set_faults(**{k: v for k, v in settings.items() if k != "keep"}, keep=bool(settings["keep"]))
    except FaultSettingError as err:
        raise sb.invalid_input(err.name, str(err)) from None
    except (ValueError, TypeError) as err:
        raise sb.invalid_input("kinds", str(err)) from None
    return Response(200, {"fail_rate": sb.fail_rate, "latency_ms": sb.latency_ms, "status_codes": [*sb.status_codes]})


@CONTROL.route("GET", CONTROL_PREFIX + "faults")
def _fault_report(sb: SandboxServer, req: Request) -> Response:
    """Every fault setting, the count of injected faults per kind, and the log (kind, method, path, operation)."""
    with sb._lock:
        log = [list(event) for event in sb.fault_log]
    return Response(200, {"settings": sb.fault_settings(), "counts": sb.fault_counts(), "log": log})


@CONTROL.route("POST", CONTROL_PREFIX + "(?P<action>revoke|reset)")
def _revoke_or_reset(sb: SandboxServer, req: Request) -> Response:
    sb.revoke_key() if req.params["action"] == "revoke" else sb.reset()
    return Response(204)


@CONTROL.route("POST", CONTROL_PREFIX + "refuse")
def _refuse(sb: SandboxServer, req: Request) -> Response:
    """``{"email": ...}``: batch calls refuse that address from now on, as a per-member error (:meth:`refuse`)."""
    email = req.json().get("email")
    if not isinstance(email, str) or "@" not in email:
        raise sb.invalid_input("email", "give the address to refuse as a string")
    sb.refuse(email)
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
            if resp.drop == "reset":
                self._reset()
                return
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
        if resp.drop == "cut":  # half the body, then an orderly close: the client reads a short body
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
            return
        self.wfile.write(body)

    def _reset(self) -> None:
        """Close the connection with a TCP reset (SO_LINGER 0), sending nothing."""
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()
        self.wfile.close()
        self.connection.close()  # the last reference: the kernel sends RST, not FIN
        self.wfile = io.BytesIO()  # what the server still flushes after the handler goes nowhere

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle


FAULT_FLAGS: tuple[tuple[str, Callable[[str], Any]], ...] = (
    ("--member-fail-rate", float),
    ("--hold-s", float),
    ("--slow-ms", int),
    ("--retry-after-s", int),
    ("--fault-filter", str),
)
FAULT_FLAG_NAMES = ("member_fail_rate", "hold_s", "slow_ms", "retry_after_s", "fault_filter")


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
    ``describe(sandbox)`` as ``key: value`` lines. ``options`` are extra string ``--flags`` (default None);
    ``--fault-kinds``, ``--member-fail-rate``, ``--hold-s``, ``--slow-ms``, ``--retry-after-s`` and
    ``--fault-filter`` go to :meth:`SandboxServer.set_faults` (kept across resets)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--host", default="127.0.0.1")
    for flag, kind, default in (("--port", int, 0), ("--latency-ms", int, 0), ("--fail-rate", float, 0.0)):
        parser.add_argument(flag, type=kind, default=default)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--fault-kinds", type=parse_kinds, default=None, help="e.g. 503,reset=2,timeout")
    for flag, convert in FAULT_FLAGS:
        parser.add_argument(flag, type=convert, default=None)
    for flag in options:
        parser.add_argument(flag, default=None)
    args = vars(parser.parse_args(argv))
    host, port = args.pop("host"), args.pop("port")
    faults = {"kinds": args.pop("fault_kinds")} | {name: args.pop(name) for name in FAULT_FLAG_NAMES}
    sandbox, stop = factory(**args), threading.Event()
    try:
        sandbox.set_faults(**faults, keep=True)
    except FaultSettingError as err:
        parser.error(str(err))

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
