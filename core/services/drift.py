"""Drift: an export's delivered state checked at the platform (``exports verify``), and repaired."""

from __future__ import annotations

import dataclasses

from ..config import validate
from ..models import Run
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
