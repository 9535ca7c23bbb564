"""Fault injection of a sandbox: which calls fail, how, and the log of what was injected.

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

import hashlib
import random
import re
import threading
from typing import Any, Callable, ClassVar, Mapping, NamedTuple, Sequence

from .messages import Request

__all__ = [
    "FAULT_KINDS",
    "FAULT_SETTINGS",
    "RETRY_AFTER",
    "FaultEvent",
    "FaultInjection",
    "FaultSettingError",
    "fault_status",
    "parse_kinds",
]

RETRY_AFTER = "429-retry-after"
FAULT_KINDS = (RETRY_AFTER, "reset", "reset-applied", "cut", "timeout", "slow")  # besides the status codes
FAULT_SETTINGS = (  # the keyword arguments of FaultInjection.set_faults, as the test API takes them
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


class FaultEvent(NamedTuple):
    """One injected fault: its kind (or ``over-limit``, ``member``), the call, and whether it hit an operation.

    An operation is one run inside a batch job rather than a call.
    """

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


def fault_status(kind: str) -> int | None:
    """Return the status a fault kind answers with; None for the connection-level kinds."""
    if kind == RETRY_AFTER:
        return 429
    return int(kind) if kind.isdigit() else None


class FaultInjection:
    """The fault settings of a sandbox and the seeded draws over them (a base of ``SandboxServer``).

    ``latency_ms``, ``fail_rate`` and ``seed`` come from the sandbox's constructor; the other settings
    start at their defaults (``kinds``: ``default_status_codes`` at equal weights).
    """

    fault_codes: ClassVar[tuple[int, ...]] = (429, 500, 503)  # the status kinds set_faults accepts
    default_status_codes: ClassVar[tuple[int, ...]] = (429, 500, 503)
    latency_ms: int
    fail_rate: float
    seed: int | None
    _lock: threading.RLock
    _rng: random.Random

    def _init_faults(self) -> None:
        """Every setting at its default (``latency_ms``, ``fail_rate``, ``seed`` already set); the RNG seeded."""
        self.kinds: dict[str, float] = dict.fromkeys(map(str, self.default_status_codes), 1.0)
        self.hold_s = 2.0  # a ``timeout`` fault holds the call this long
        self.slow_ms = 300  # a ``slow`` fault adds this delay
        self.retry_after_s = 1  # the Retry-After of a ``429-retry-after`` fault
        self.member_fail_rate = 0.0  # share of addresses batch calls refuse as per-member errors
        self.fault_filter = ""  # faults only on calls whose "METHOD /path" this regex finds ("": every call)
        self.fail_next = 0  # the next this many (targeted) calls fail, then fail_rate decides again
        self.refused: set[str] = set()  # addresses batch calls always refuse (normalised), see refuse()
        self.fault_log: list[FaultEvent] = []
        self._initial: dict[str, Any] = self.fault_settings()
        self._rng = random.Random(self.seed)

    def _reset_faults(self) -> None:
        """Put settings back to how they were constructed (or kept), re-seed the RNG, clear refusals and log."""
        with self._lock:
            for name, value in self._initial.items():
                if name != "status_codes":
                    setattr(self, name, dict(value) if isinstance(value, dict) else value)
            self._rng = random.Random(self.seed)
            self.refused.clear()
            self.fault_log.clear()

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

    def fault_report(self) -> dict[str, Any]:
        """Every setting, the count of injected faults per kind, and the log as lists (``GET /_sandbox/faults``)."""
        with self._lock:
            log = [list(event) for event in self.fault_log]
            return {"settings": self.fault_settings(), "counts": self.fault_counts(), "log": log}

    def member_fault(self, email: str) -> bool:
        """Return whether batch calls refuse ``email`` now.

        They do for an address :meth:`refuse` named, or one whose seeded hash falls under
        ``member_fail_rate``: the same addresses on every call, so the expected state is computable.
        """
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
        """Draw whether ``req`` fails and how; return the fault kind, or None when it does not fail.

        A failure is forced by ``fail_next``, else drawn at ``fail_rate``; its kind is drawn from the weighted
        ``kinds``.

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
            kinds = {k: w for k, w in self.kinds.items() if w > 0 and (not operation or fault_status(k))}
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
