"""Schedules: the system refresh, export cron schedules, and firing them."""

from __future__ import annotations

from ..errors import ExecutorError, SegportError
from ..models import ScheduledRun
from ..scheduling import validate_cron
from .context import Context
from .runs import Runs

REFRESH_SETTING = "refresh_schedule"


class Schedules:
    """The refresh (every enabled export once) and the cron jobs the scheduler fires."""

    def __init__(self, context: Context, runs: Runs) -> None:
        self.context = context
        self.runs = runs

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
        ctx = self.context
        ctx.authorize("schedule.show")
        jobs = {}
        refresh = ctx.store.get_setting(REFRESH_SETTING)
        if refresh:
            jobs["refresh"] = refresh
        for export in ctx.store.list_exports():
            if export.schedule and export.enabled and not export.detached:
                jobs[f"export:{export.name}"] = export.schedule
        return jobs

    def fire(self, *, job: str) -> list[ScheduledRun]:
        """Run a scheduler job by its name from :meth:`jobs`."""
        if job == "refresh":
            return self.refresh(trigger="schedule")
        return [self._run_for_schedule(job.removeprefix("export:"), "schedule")]

    def set_refresh(self, *, cron: str | None) -> str | None:
        """Set (or with None, clear) the system refresh's cron line; returns it as stored."""
        ctx = self.context
        actor = ctx.authorize("schedule.set")
        value = validate_cron(cron) if cron else None
        with ctx.store.transaction():
            ctx.store.set_setting(REFRESH_SETTING, value)
            ctx.store.audit(actor.name, "schedule.set", "refresh", {"cron": value})
        return value

    def get_refresh(self) -> str | None:
        """Return the system refresh's cron line, if one is set."""
        self.context.authorize("schedule.show")
        return self.context.store.get_setting(REFRESH_SETTING)

    def _run_for_schedule(self, name: str, trigger: str) -> ScheduledRun:
        try:
            if self.context.executor is not None:
                return ScheduledRun(export=name, task=self.runs.queue(name=name, trigger=trigger))
            return ScheduledRun(export=name, run=self.runs.run(name=name, trigger=trigger))
        except ExecutorError:
            raise  # the broker is down: no export can be queued
        except SegportError as exc:
            return ScheduledRun(export=name, error=str(exc))
