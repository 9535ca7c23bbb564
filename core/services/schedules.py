"""Schedules: the system refresh, export cron schedules, and firing them."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Callable

from ..errors import ExecutorError, SegportError
from ..models import ScheduledRun
from ..scheduling import next_fires, split_schedule, validate_cron, zone
from .context import Context
from .runs import Runs
from .visibility import visible_exports

REFRESH_SETTING = "refresh_schedule"
#: {job: {"cron", "error", "at"}}: the jobs whose last attempt failed, as the scheduler marked them.
FAILURES_SETTING = "schedule_failures"


class Schedules:
    """The refresh (every enabled export once) and the cron jobs the scheduler fires."""

    def __init__(self, context: Context, runs: Runs) -> None:
        self.context = context
        self.runs = runs
        # Called before each scheduled run of an export (the drift service's verify-every check).
        self.before_scheduled: Callable[[str], ScheduledRun | None] | None = None

    def refresh(self, *, trigger: str = "refresh") -> list[ScheduledRun]:
        """Run every enabled, attached export once; one failure does not stop the others.

        With an executor, each run is queued instead (a :class:`ScheduledRun` with its ``task`` id).
        """
        ctx = self.context
        ctx.authorize("refresh")
        if ctx.executor is not None:
            ctx.executor.check()
        return [
            self._run_for_schedule(export.name, trigger)
            for export in ctx.store.list_exports()
            if export.enabled and not export.detached
        ]

    def jobs(self) -> dict[str, str]:
        """Every cron job: ``refresh`` (the system schedule) and ``export:NAME`` per export schedule."""
        self.context.authorize("schedule.show")
        return self._jobs()

    def _jobs(self) -> dict[str, str]:
        ctx = self.context
        jobs = {}
        refresh = ctx.store.get_setting(REFRESH_SETTING)
        if refresh:
            jobs["refresh"] = refresh
        for export in ctx.store.list_exports():
            if export.schedule and export.enabled and not export.detached:
                jobs[f"export:{export.name}"] = export.schedule
        return jobs

    def failures(self) -> dict[str, dict[str, str]]:
        """Return the jobs the scheduler marked as failing: ``{job: {"cron", "error", "at"}}``.

        A mark holds while the job keeps its cron line: a new line (or a removed job) drops it.
        """
        ctx = self.context
        ctx.authorize("schedule.show")
        jobs = self._jobs()
        return {job: mark for job, mark in self._marks().items() if jobs.get(job) == mark.get("cron")}

    def mark(self, *, job: str, error: str | None) -> None:
        """Mark ``job`` as failing with ``error`` (its current cron line, the time), or with None clear its mark."""
        ctx = self.context
        ctx.authorize("refresh")
        with ctx.store.transaction():
            marks = self._marks()
            if error is None and job not in marks:
                return  # nothing to clear: no write
            jobs = self._jobs()
            marks = {name: mark for name, mark in marks.items() if name != job and jobs.get(name) == mark.get("cron")}
            if error is not None:
                at = datetime.now(timezone.utc).isoformat(timespec="seconds")
                marks[job] = {"cron": jobs.get(job, ""), "error": " ".join(error.split()), "at": at}
            ctx.store.set_setting(FAILURES_SETTING, json.dumps(marks, sort_keys=True) if marks else None)

    def fire(self, *, job: str) -> list[ScheduledRun]:
        """Run a scheduler job by its name from :meth:`jobs`."""
        if job == "refresh":
            return self.refresh(trigger="schedule")
        return [self._run_for_schedule(job.removeprefix("export:"), "schedule")]

    def overview(self, *, count: int = 3, now: datetime | None = None) -> list[dict[str, Any]]:
        """Describe the system schedule and every export's own: line, zone, next ``count`` runs, failing mark.

        A disabled or detached export's schedule is listed with ``active`` false and no next runs;
        non-admins see the exports they may see (of connections shared with contributors).
        """
        ctx = self.context
        user = ctx.authorize("schedule.show")
        start = now or datetime.now(timezone.utc)
        marks = self.failures()
        rows = []
        refresh = ctx.store.get_setting(REFRESH_SETTING)
        if refresh:
            rows.append(self._describe("refresh", refresh, True, count, start, marks))
        for export in visible_exports(ctx, user):
            if export.schedule:
                active = export.enabled and not export.detached
                rows.append(self._describe(f"export:{export.name}", export.schedule, active, count, start, marks))
        return rows

    @staticmethod
    def _describe(
        job: str, schedule: str, active: bool, count: int, start: datetime, marks: dict[str, dict[str, str]]
    ) -> dict[str, Any]:
        cron, name = split_schedule(schedule)
        try:
            tz = zone(name)
            upcoming = [t.astimezone(tz).isoformat(timespec="minutes") for t in next_fires(schedule, start, count)]
        except Exception:  # a line stored before it was refused: the scheduler reports it too
            upcoming = []
        return {
            "job": job,
            "export": job.removeprefix("export:") if job.startswith("export:") else None,
            "schedule": schedule,
            "cron": cron,
            "timezone": name or "UTC",
            "active": active,
            "next_runs": upcoming if active else [],
            "failing": marks.get(job),
        }

    def set_refresh(self, *, cron: str | None, timezone_name: str | None = None) -> str | None:
        """Set (or with None, clear) the system refresh's schedule, in ``timezone_name`` (IANA; default UTC).

        Returns the schedule as stored (``CRON_TZ=ZONE CRON`` in a zone other than UTC).
        """
        ctx = self.context
        actor = ctx.authorize("schedule.set")
        value = validate_cron(cron, timezone_name=timezone_name) if cron else None
        with ctx.store.transaction():
            ctx.store.set_setting(REFRESH_SETTING, value)
            ctx.store.audit(actor.name, "schedule.set", "refresh", {"cron": value})
        return value

    def get_refresh(self) -> str | None:
        """Return the system refresh's cron line, if one is set."""
        self.context.authorize("schedule.show")
        return self.context.store.get_setting(REFRESH_SETTING)

    def _marks(self) -> dict[str, dict[str, str]]:
        text = self.context.store.get_setting(FAILURES_SETTING)
        try:
            marks: Any = json.loads(text) if text else {}
        except ValueError:
            return {}  # an unreadable mark is no mark
        return {str(k): v for k, v in marks.items() if isinstance(v, dict)} if isinstance(marks, dict) else {}

    def _run_for_schedule(self, name: str, trigger: str) -> ScheduledRun:
        if trigger == "schedule" and self.before_scheduled is not None:
            repaired = self.before_scheduled(name)  # every Nth scheduled run verifies and repairs first
            if repaired is not None and repaired.error is not None:
                return repaired
        try:
            if self.context.executor is not None:
                return ScheduledRun(export=name, task=self.runs.queue(name=name, trigger=trigger))
            return ScheduledRun(export=name, run=self.runs.run(name=name, trigger=trigger))
        except ExecutorError:
            raise  # the broker is down: no export can be queued
        except SegportError as exc:
            return ScheduledRun(export=name, error=str(exc))
