"""Cron schedules: validation, next fire times, and the foreground scheduler loop."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from typing import Callable

from croniter import CroniterError, croniter

from .errors import InputError

#: A cron line must fire within this many years of being set: a line that never fires (30 February)
#: or fires only in the far future is a mistake, and croniter cannot compute the next time of one.
HORIZON_YEARS = 5

_FIELDS = "use five fields 'minute hour day month weekday', e.g. '0 3 * * *' for 03:00 every day"


def validate_cron(expression: str, *, now: datetime | None = None) -> str:
    """Return the normalised cron line or raise :class:`InputError` naming the fix.

    Besides the syntax, the line must fire within :data:`HORIZON_YEARS` years of ``now``.
    """
    text = " ".join(expression.split())
    if not text or len(text.split()) != 5 or not croniter.is_valid(text):
        raise InputError(f"invalid cron schedule {expression!r}: {_FIELDS}")
    start = now or datetime.now(timezone.utc)
    try:
        first: datetime | None = croniter(text, start, max_years_between_matches=HORIZON_YEARS).get_next(datetime)
    except (CroniterError, ValueError, OverflowError):
        first = None
    if first is None or first > start + timedelta(days=366 * HORIZON_YEARS):
        raise InputError(
            f"invalid cron schedule {expression!r}: it never fires within the next {HORIZON_YEARS} years"
            " (check the day and the month: e.g. 30 February and 31 April do not exist)"
        )
    return text


def next_fire(expression: str, after: datetime) -> datetime:
    """Return the first time strictly after ``after`` at which ``expression`` fires (UTC).

    Raises ``croniter``'s errors (a ``ValueError``) for a line that never fires.
    """
    result: datetime = croniter(expression, after).get_next(datetime)
    return result


def _fix(job: str) -> str:
    """How to give ``job`` a new cron line."""
    if job.startswith("export:"):
        return f"set another with 'segport exports edit {job.removeprefix('export:')} --schedule CRON'"
    return "set another with 'segport schedule set CRON'"


class Scheduler:
    """Fires jobs on their cron clocks until ``stop`` is set. One job runs at a time.

    No job stops the others: a cron line whose next time cannot be computed (one stored before it was
    refused, like 30 February) and a job whose run raises are each reported through ``on_error`` and
    skipped; a broken cron line is reported once, until it changes.

    :param jobs: returns the current {job name: cron line} (re-read every tick, so edits apply).
    :param fire: runs the named job; its exceptions are reported through ``on_error``.
    :param on_error: receives the job's name (``"jobs"`` when reading the jobs failed) and the error.
    :param on_success: receives the name of a job that fired without raising (e.g. to clear a mark).
    """

    def __init__(
        self,
        jobs: Callable[[], dict[str, str]],
        fire: Callable[[str], None],
        on_error: Callable[[str, BaseException], None],
        *,
        on_success: Callable[[str], None] | None = None,
        clock: Callable[[], datetime] | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.jobs = jobs
        self.fire = fire
        self.on_error = on_error
        self.on_success = on_success or (lambda _name: None)
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.stop = stop or threading.Event()
        self._broken: dict[str, str] = {}  # job -> the cron line already reported as broken

    def due(self, since: datetime, until: datetime) -> list[str]:
        """Jobs whose schedule fired in (since, until]; a job whose line has no next time is reported, not due."""
        due = []
        jobs = self.jobs()
        for name, cron in jobs.items():
            try:
                fires = next_fire(cron, since) <= until
            except Exception as exc:  # croniter's errors, or anything a stored line can make it raise
                if self._broken.get(name) != cron:
                    self._broken[name] = cron
                    self.on_error(name, InputError(f"cron schedule {cron!r} has no next time ({exc}): {_fix(name)}"))
                continue
            self._broken.pop(name, None)
            if fires:
                due.append(name)
        for name in set(self._broken) - set(jobs):
            del self._broken[name]
        return sorted(due)

    def run(self, tick: float = 1.0) -> None:
        """Loop until :attr:`stop` is set (SIGINT/SIGTERM handlers set it)."""
        last = self.clock()
        while not self.stop.wait(tick):
            current = self.clock()
            try:
                due = self.due(last, current)
            except Exception as exc:  # the jobs could not be read (e.g. the database is unreachable)
                self.on_error("jobs", exc)
                continue  # ``last`` is kept: jobs due meanwhile fire once the jobs can be read again
            for name in due:
                if self.stop.is_set():
                    break
                try:
                    self.fire(name)
                except Exception as exc:
                    self.on_error(name, exc)
                else:
                    self.on_success(name)
            last = current
