"""Cron schedules: validation, next fire times, and the foreground scheduler loop."""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from typing import Callable

from croniter import croniter

from .errors import InputError


def validate_cron(expression: str) -> str:
    """Return the normalised cron line or raise :class:`InputError` naming the fix."""
    text = " ".join(expression.split())
    if not text or len(text.split()) != 5 or not croniter.is_valid(text):
        raise InputError(
            f"invalid cron schedule {expression!r}: use five fields 'minute hour day month weekday', "
            "e.g. '0 3 * * *' for 03:00 every day"
        )
    return text


def next_fire(expression: str, after: datetime) -> datetime:
    """Return the first time strictly after ``after`` at which ``expression`` fires (UTC)."""
    result: datetime = croniter(expression, after).get_next(datetime)
    return result


class Scheduler:
    """Fires jobs on their cron clocks until ``stop`` is set. One job runs at a time.

    :param jobs: returns the current {job name: cron line} (re-read every tick, so edits apply).
    :param fire: runs the named job; its exceptions are reported through ``on_error``.
    """

    def __init__(
        self,
        jobs: Callable[[], dict[str, str]],
        fire: Callable[[str], None],
        on_error: Callable[[str, BaseException], None],
        *,
        clock: Callable[[], datetime] | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.jobs = jobs
        self.fire = fire
        self.on_error = on_error
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.stop = stop or threading.Event()

    def due(self, since: datetime, until: datetime) -> list[str]:
        """Jobs whose schedule fired in (since, until]."""
        return sorted(name for name, cron in self.jobs().items() if next_fire(cron, since) <= until)

    def run(self, tick: float = 1.0) -> None:
        """Loop until :attr:`stop` is set (SIGINT/SIGTERM handlers set it)."""
        last = self.clock()
        while not self.stop.wait(tick):
            current = self.clock()
            for name in self.due(last, current):
                if self.stop.is_set():
                    break
                try:
                    self.fire(name)
                except Exception as exc:
                    self.on_error(name, exc)
            last = current
