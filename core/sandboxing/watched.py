"""A sandbox base for crash and fleet tests: :class:`WatchedWrites` counts write calls and acts at the Nth."""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from typing import Any, Callable

from .messages import Request, Response
from .server import SandboxServer

__all__ = ["WatchedWrites"]


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
        """Return the addresses ``req`` writes, when it is the platform's write call; None otherwise."""
        raise NotImplementedError(f"{type(self).__name__}.written(): name the platform's write call")

    def respond(self, req: Request) -> Response:
        """Count the call in flight and, once answered, the answered writes."""
        with self.watch:
            self.active += 1
        try:
            return super().respond(req)
        finally:
            with self.watch:
                self.active -= 1
                self.answered += self.written(req) is not None

    def authenticate(self, req: Request) -> None:
        """Count a write; run ``action`` at write number ``act_at`` (later writes wait for it)."""
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
        """Wait until no request has been answered or started for 0.5 s.

        A killed client's calls still land, some read from the socket only after the kill.
        """
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
