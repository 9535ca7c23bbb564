"""Cron schedules: validation, time zones, next fire times, and the foreground scheduler loop."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Callable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import CroniterError, croniter

from .errors import InputError

#: A cron line must fire within this many years of being set: a line that never fires (30 February)
#: or fires only in the far future is a mistake, and croniter cannot compute the next time of one.
HORIZON_YEARS = 5

#: Shorthands a schedule may use instead of five fields (as cron's).
ALIASES = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}

#: A stored schedule in a time zone other than UTC starts with this (as cronie's and Kubernetes'):
#: ``CRON_TZ=Europe/Paris 0 3 * * *`` fires at 03:00 Paris time.
TZ_PREFIX = "CRON_TZ="

_FIELDS = (
    "use five fields 'minute hour day month weekday', e.g. '0 3 * * *' for 03:00 every day, "
    "or @hourly, @daily, @weekly, @monthly, @yearly"
)


def split_schedule(text: str) -> tuple[str, str | None]:
    """Return the cron line (or alias) of a stored schedule and its time zone (None: UTC)."""
    words = text.split()
    if words and words[0].startswith(TZ_PREFIX):
        return " ".join(words[1:]), words[0].removeprefix(TZ_PREFIX) or None
    return " ".join(words), None


def in_zone(schedule: str, name: str | None) -> str:
    """Return ``schedule`` with its time zone set to ``name`` (an IANA name; "UTC" or None: no zone prefix)."""
    return _stored(split_schedule(schedule)[0], name)


def zone(name: str | None) -> tzinfo:
    """Return the IANA time zone ``name`` (None: UTC), or raise :class:`InputError` naming the fix."""
    if name is None:
        return timezone.utc
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        same = sorted(known for known in available_timezones() if known.casefold() == name.casefold())
        if same:  # IANA names are case-sensitive: europe/paris is no zone, Europe/Paris is
            raise InputError(
                f"unknown time zone {name!r}: did you mean {same[0]}? (the names are case-sensitive)"
            ) from None
        raise InputError(
            f"unknown time zone {name!r}: use an IANA name such as Europe/Paris, America/New_York or UTC"
        ) from None


def validate_cron(expression: str, *, now: datetime | None = None, timezone_name: str | None = None) -> str:
    """Return the schedule as stored, or raise :class:`InputError` naming the fix.

    ``expression`` is five cron fields or an alias (``@daily``), optionally after ``CRON_TZ=ZONE``;
    ``timezone_name`` (an IANA name) sets or replaces that zone. Besides the syntax, the line must
    fire within :data:`HORIZON_YEARS` years of ``now``.
    """
    cron, name = split_schedule(expression)
    name = timezone_name or name
    zone(name)
    text = cron.lower() if cron.startswith("@") else cron
    fields = ALIASES.get(text, text)
    if not fields or len(fields.split()) != 5 or not croniter.is_valid(fields):
        raise InputError(f"invalid cron schedule {expression!r}: {_FIELDS}")
    start = now or datetime.now(timezone.utc)
    try:
        first: datetime | None = next_fire(_stored(text, name), start)
    except (CroniterError, ValueError, OverflowError):
        first = None
    if first is None or first > start + timedelta(days=366 * HORIZON_YEARS):
        raise InputError(
            f"invalid cron schedule {expression!r}: it never fires within the next {HORIZON_YEARS} years"
            " (check the day and the month: e.g. 30 February and 31 April do not exist)"
        )
    return _stored(text, name)


def _stored(cron: str, name: str | None) -> str:
    return f"{TZ_PREFIX}{name} {cron}" if name and name != "UTC" else cron


def next_fire(expression: str, after: datetime) -> datetime:
    """Return the first instant strictly after ``after`` at which the schedule fires (in UTC).

    The cron fields are wall times in the schedule's zone. Daylight saving time: a wall time the
    clocks skip fires once, when they jump; a wall time they repeat fires once, the first time.
    Raises ``croniter``'s errors (a ``ValueError``) for a line that never fires.
    """
    cron, name = split_schedule(expression)
    fields = ALIASES.get(cron.lower(), cron)
    tz = zone(name)
    after_utc = after.astimezone(timezone.utc) if after.tzinfo else after.replace(tzinfo=timezone.utc)
    wall = after_utc.astimezone(tz).replace(tzinfo=None)
    times = croniter(fields, wall, max_years_between_matches=HORIZON_YEARS)
    for _ in range(10_000):  # a few steps at most: only a repeated hour can yield times already past
        candidate = _instant(times.get_next(datetime), tz)
        if candidate > after_utc:
            return candidate
    raise ValueError(f"no fire time found after {after_utc.isoformat()}")


def next_fires(expression: str, after: datetime, count: int) -> list[datetime]:
    """Return the next ``count`` instants (UTC) at which the schedule fires after ``after``."""
    result: list[datetime] = []
    for _ in range(count):
        after = next_fire(expression, after)
        result.append(after)
    return result


def _instant(wall: datetime, tz: tzinfo) -> datetime:
    """Return the UTC instant of a naive wall time in ``tz``: the first of a repeated one, the jump of a skipped one."""
    moment = wall.replace(tzinfo=tz)
    if moment.astimezone(timezone.utc).astimezone(tz).replace(tzinfo=None) == wall:
        return moment.astimezone(timezone.utc)
    step = wall
    for _ in range(24 * 60):  # inside a gap: the first wall time that exists is the jump
        step += timedelta(minutes=1)
        probe = step.replace(tzinfo=tz)
        if probe.astimezone(timezone.utc).astimezone(tz).replace(tzinfo=None) == step:
            return probe.astimezone(timezone.utc)
    return moment.astimezone(timezone.utc)


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

    def run(self, tick: float = 1.0, *, since: datetime | None = None) -> None:
        """Loop until :attr:`stop` is set (SIGINT/SIGTERM handlers set it).

        The first tick fires the jobs due after ``since`` (default: the start), so an earlier ``since``
        catches up on what was due before the start.
        """
        last = since or self.clock()
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
