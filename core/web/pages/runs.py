"""Runs: the history (filtered, paginated) and a run's page, with live progress while it runs and its rejects."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from ...errors import SegportError
from ...models import Run, RunStatus
from ...workspace import Workspace
from ..actor import PageUser
from ..templating import render
from .paging import PER_PAGE, duration, offset_of, page_number, pager

router = APIRouter()

REJECTS_SHOWN = 200  # rejects listed on a run's page; `segport runs rejects ID` prints them all
TRIGGERS = ("manual", "api", "schedule", "refresh")
OUTCOMES = ("created", "updated", "unchanged", "exits", "rejected", "failed", "skipped")


def outcome_counts(run: Run) -> dict[str, int]:
    """Return a run's count per outcome, in the history's order (exits come from the run's plan)."""
    counts = {name: run.counts.get(name, 0) for name in OUTCOMES}
    counts["exits"] = (run.plan or {}).get("exits", 0)
    return counts


def progress_of(run: Run) -> dict[str, int]:
    """Return how far a run is: profiles ``selected`` by its plan and records ``processed`` so far."""
    settled = ("created", "updated", "unchanged", "rejected", "failed", "skipped")
    processed = sum(run.counts.get(name, 0) for name in settled)
    selected = (run.plan or {}).get("selected", 0)
    return {"selected": selected, "processed": processed, "max": max(selected, processed)}


def run_duration(run: Run) -> str:
    """Return how long a run took, or has been running so far."""
    if run.duration_s is not None:
        return duration(run.duration_s)
    if run.status is RunStatus.RUNNING:
        try:
            started = datetime.fromisoformat(run.started_at)
        except ValueError:
            return ""
        if started.tzinfo is None:
            started = started.replace(tzinfo=timezone.utc)
        return duration((datetime.now(timezone.utc) - started).total_seconds())
    return ""


@router.get("/runs")
def runs_page(
    request: Request, ws: PageUser, export: str = "", status: str = "", trigger: str = "", page: str = "1"
) -> HTMLResponse:
    """Show the run history, newest first, filtered by export, status and trigger."""
    filters = {"export": export.strip(), "status": status, "trigger": trigger}
    number = page_number(page)
    error = None
    runs: list[Run] = []
    total = 0
    try:
        found = ws.runs_page(
            limit=PER_PAGE,
            offset=offset_of(number),
            export=filters["export"] or None,
            status=status or None,
            trigger=trigger or None,
        )
        runs, total = found.items, found.total
    except SegportError as exc:
        error = exc.message
    return render(
        request,
        "runs.html",
        role=ws.user.role.value,
        runs=runs,
        filters=filters,
        statuses=[s.value for s in RunStatus],
        triggers=TRIGGERS,
        pager=pager("/runs", number, total, filters),
        counts=outcome_counts,
        duration=run_duration,
        error=error,
    )


def _run_context(request: Request, ws: Workspace, run_id: int) -> dict[str, Any]:
    """Return what the run page and its progress region show: the run as of now, its counts, its rejects once done."""
    run = _current(request, ws, run_id)
    rejects = None if run.status is RunStatus.RUNNING else ws.run_rejects(run_id, REJECTS_SHOWN)
    return {
        "role": ws.user.role.value,
        "run": run,
        "rejects": rejects,
        "shown": REJECTS_SHOWN,
        "counts": outcome_counts(run),
        "progress": progress_of(run),
        "duration": run_duration,
    }


@router.get("/runs/{run_id}")
def run_page(request: Request, run_id: int, ws: PageUser) -> HTMLResponse:
    """Show one run: its facts, its progress (live while it runs), its counts and its rejects once done."""
    return render(request, "run.html", **_run_context(request, ws, run_id))


@router.get("/runs/{run_id}/progress")
def run_progress(request: Request, run_id: int, ws: PageUser) -> HTMLResponse:
    """Return the progress region of a run: it polls itself while the run goes on, and stops once it ended."""
    # once the run ended (oob): its facts and rejects replace the page's own
    return render(request, "run_progress.html", oob=True, **_run_context(request, ws, run_id))


def _current(request: Request, ws: PageUser, run_id: int) -> Run:
    """Return the run's record (the services check who may read it), live figures when it runs in this server."""
    stored = ws.get_run(run_id)
    if stored.status is RunStatus.RUNNING:
        live = request.app.state.runs.live(run_id)
        if live is not None:
            return live  # type: ignore[no-any-return]
    return stored
