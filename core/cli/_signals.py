"""SIGTERM stops a run cleanly: between two batches, recorded as interrupted; the next run resumes it.

A run stopped by SIGTERM ends as one stopped by Ctrl-C (a :class:`KeyboardInterrupt`, which the
engine records as ``interrupted``), but never in the middle of a write: while a run sends, the stop
waits for the batch being committed, so every batch the platform answered is recorded.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from types import FrameType
from typing import Iterator

from ..contract import BatchResult
from ..hookspecs import hookimpl
from ..models import Export, Run, RunStatus
from ..workspace import Workspace


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: a :class:`KeyboardInterrupt`, so a run stops (and is recorded) exactly as on Ctrl-C."""

    def __init__(self, message: str = "terminated (SIGTERM)") -> None:
        super().__init__(message)
        self.message = message
        self.run: Run | None = None  # the run it stopped, recorded interrupted, when known

    def __str__(self) -> str:
        """Return the one line to print."""
        return self.message


def raise_terminated(_signum: int = signal.SIGTERM, _frame: FrameType | None = None) -> None:
    """Raise :class:`Terminated` (a signal handler); a second SIGTERM is then ignored while the process ends."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated()


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """While inside, SIGTERM raises :class:`Terminated` in the main thread (elsewhere: nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class RunGuard:
    """Stops the runs of one workspace on SIGTERM at a safe point, and names the run it stopped.

    While a run sends, SIGTERM is remembered and raised after the batch being committed; at any other
    time it is raised at once.
    """

    def __init__(self) -> None:
        self.run: Run | None = None
        self.sending = False
        self.requested = False

    @hookimpl
    def segport_before_run(self, run: Run, export: Export) -> None:
        """Remember the run; from now on a stop waits for a batch's end."""
        self.run, self.sending = run, True

    @hookimpl
    def segport_after_batch(self, run: Run, export: Export, result: BatchResult) -> None:
        """Stop here, a batch committed, when SIGTERM arrived."""
        if self.requested:
            raise Terminated()

    @hookimpl
    def segport_after_run(self, run: Run, export: Export) -> None:
        """Forget the sending: the run is over and recorded, so a stop takes effect at once again."""
        self.sending = False

    def stop(self) -> None:
        """Ask the run to stop: at once outside a run's sending, else after the current batch."""
        self.requested = True
        if not self.sending:
            raise Terminated()

    def on_sigterm(self, _signum: int, _frame: FrameType | None) -> None:
        """Handle SIGTERM (the first one only: a repeat changes nothing)."""
        if not self.requested:
            self.stop()

    def stopped(self) -> str:
        """Return the line to print after SIGTERM: the run it stopped, and that the next run resumes it."""
        run = self.run
        if run is None or run.status is not RunStatus.INTERRUPTED:
            return "terminated (SIGTERM)"
        return (
            f"terminated (SIGTERM): run {run.id} of {run.export} was stopped and recorded as interrupted; "
            "the next run resumes it"
        )


def guard_runs(ws: Workspace) -> RunGuard:
    """Register a :class:`RunGuard` on ``ws`` and let it handle SIGTERM (in the main thread); return it."""
    guard = RunGuard()
    ws.pm.register(guard, name="segport.run-guard")
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, guard.on_sigterm)
    return guard
