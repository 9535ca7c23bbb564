"""Drift: an export's delivered state checked at the platform (``exports verify``), and repaired."""

from __future__ import annotations

import dataclasses

from ..config import validate
from ..errors import InputError, SegportError
from ..models import Export, Run, ScheduledRun
from ..pipeline.verify import DriftReport, verify
from .context import Context
from .runs import Runs


class Drift:
    """Verifying exports against their platform, and repair runs that send only what drifted."""

    def __init__(self, context: Context, runs: Runs) -> None:
        self.context = context
        self.runs = runs

    def verify(self, *, name: str) -> DriftReport:
        """Read the export's delivered people at the platform; return what differs (sends nothing).

        Needs the permission to run the export: it uses the connection's credentials.
        """
        ctx = self.context
        request = self.runs.request(name, dry_run=True)  # a disabled export may still be checked
        options = validate(request.export.options, request.destination.spec().export_schema, f"export {name!r} options")
        report = verify(ctx.store, request, options, ctx.retry)
        ctx.store.audit(
            ctx.user.name,
            "exports.verify",
            name,
            {
                "checked": report.checked,
                "missing": len(report.missing),
                "status_changes": len(report.status_changes),
                "drifted": len(report.drifted),
                "known": report.known,
            },
        )
        return report

    def repair(self, *, name: str, trigger: str = "manual") -> tuple[DriftReport, Run]:
        """Verify the export, then run it sending only the repairs found (markers and fields put back).

        People the platform no longer lets segport write to (unsubscribed, archived, cleaned, bounced,
        deleted or missing) are in the report and in no send. The run record's plan holds ``repair: 1``.
        """
        report = self.verify(name=name)
        request = self.runs.request(name, trigger=trigger)
        return report, self.runs.execute(dataclasses.replace(request, repair=report.repairs()))

    def set_verify_every(self, *, name: str, every: int) -> Export:
        """Make every ``every``-th scheduled run of the export verify and repair first (0: never)."""
        ctx = self.context
        if every < 0:
            raise InputError(
                f"verify every {every} scheduled runs: give 0 (never) or a positive count", param="verify_every"
            )
        export, _ = self.runs.exports.export_for("exports.edit", name)
        with ctx.store.transaction():
            ctx.store.set_verify_every(export.id, every or None)
            ctx.store.audit(
                ctx.user.name,
                "exports.edit",
                name,
                {"verify_every": {"old": export.verify_every, "new": every or None}},
            )
        return ctx.store.get_export(name)

    def scheduled_repair(self, name: str) -> ScheduledRun | None:
        """Before a scheduled run of ``name``: verify and repair when it is the export's Nth, else None.

        Scheduled runs 1, 2, ... of an export with ``verify_every`` N: runs N, 2N, ... verify first,
        counted from the history (a scheduled repair run holds ``repair`` in its plan). The repair
        runs in this process, even with an executor; the scheduled run follows it.
        """
        export = self.context.store.get_export(name)
        every = export.verify_every
        if not every or not export.enabled or export.detached:
            return None
        since, repaired = 0, False  # scheduled runs since the last scheduled repair (its own run included)
        for plan in self.context.store.scheduled_plans(export.id, every + 1):
            if plan.get("repair"):
                repaired = True
                break
            since += 1
        if since < (every if repaired else every - 1):
            return None
        try:
            _, run = self.repair(name=name, trigger="schedule")
        except SegportError as exc:
            return ScheduledRun(export=name, error=f"verify and repair first: {exc}")
        return ScheduledRun(export=name, run=run)
