"""Data > Exports: the list (50 a page), an export's page, and its buttons.

"Run now" starts the run in the server (or queues it for workers) and goes to the run's page;
"Dry run" shows the plan and sample records in the words of ``exports run --dry-run
--show-records`` (the CLI's :mod:`segport.cli._dryrun` holds them); "Disable"/"Enable", "Edit"
(:mod:`.export_form`) and "Remove" (after a confirmation).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from ...cli._dryrun import RUN_WORDS, SHOWN_ELSEWHERE, record_line
from ...errors import NotFound, PermissionDenied, SegportError
from ...models import Export, Run, RunStatus
from ...pipeline.preview import DEFAULT_SHOWN, Preview
from ...workspace import Workspace
from ..actor import PageUser
from ..templating import flash, render
from .export_form import audience_key, export_path

router = APIRouter()

PAGE_SIZE = 50
RECENT_RUNS = 10


def _audience_keys(ws: Workspace) -> list[str]:
    """Return the export options that name an audience (list), of every installed plugin."""
    keys: list[str] = []
    for info in ws.registry.infos():
        if info.status == "ok":
            key = audience_key(ws.registry.get(info.name))
            if key and key not in keys:
                keys.append(key)
    return keys


def audience_of(export: Export, keys: list[str]) -> str:
    """Return the audience (list) id an export's options name ("" when none does)."""
    return next((str(export.options[k]) for k in keys if k in export.options), "")


def last_run(ws: Workspace, export: str) -> Run | None:
    """Return the export's newest run that was not a dry run (None: it never ran)."""
    runs = ws.list_runs(export=export, limit=RECENT_RUNS)
    return next((run for run in runs if run.status is not RunStatus.PLANNED), None)


def status_of(export: Export, run: Run | None) -> str:
    """Return an export's status in one word or two: detached, disabled, or how its last run ended."""
    if export.detached:
        return "Detached"
    if not export.enabled:
        return "Disabled"
    return run.status.value.capitalize() if run is not None else "Never run"


def short_time(iso: str | None) -> str:
    """Return a stored time (ISO 8601, UTC) as people read it: ``2026-12-08 01:56 UTC``."""
    if not iso:
        return ""
    return f"{iso[:10]} {iso[11:16]} UTC" if len(iso) >= 16 and iso[10] == "T" else iso


def counts_of(run: Run) -> str:
    """Return a run's counts per outcome, in the run's words, as one line (the ones that are not zero)."""
    words = [word for word, _ in RUN_WORDS] + ["failed"]
    shown = [f"{run.counts[w]:,} {w}" for w in words if run.counts.get(w)]
    return ", ".join(shown) or "nothing to send"


@router.get("/data/exports")
def exports_list(request: Request, ws: PageUser, page: int = 1) -> Response:
    """List the exports, 50 a page, with their last run."""
    exports = ws.list_exports()
    pages = max((len(exports) + PAGE_SIZE - 1) // PAGE_SIZE, 1)
    page = min(max(page, 1), pages)
    keys = _audience_keys(ws)
    rows = []
    for export in exports[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]:
        run = last_run(ws, export.name)
        rows.append(
            {
                "export": export,
                "href": export_path(export.name),
                "audience": audience_of(export, keys),
                "run": run,
                "counts": counts_of(run) if run else "",
                "started": short_time(run.started_at) if run else "",
                "status": status_of(export, run),
            }
        )
    return render(
        request,
        "exports/list.html",
        role=ws.user.role.value,
        rows=rows,
        page=page,
        pages=pages,
        total=len(exports),
    )


def _page(request: Request, ws: Workspace, name: str, **extra: Any) -> Response:
    export = ws.get_export(name)
    runs = ws.list_runs(export=name, limit=RECENT_RUNS)
    keys = _audience_keys(ws)
    usable = any(c.name == export.connection for c in ws.list_connections()) and not export.detached
    return render(
        request,
        "exports/page.html",
        role=ws.user.role.value,
        export=export,
        base=export_path(name),
        updated=short_time(export.updated_at),
        audience=audience_of(export, keys),
        options={k: v for k, v in export.options.items() if k not in keys},
        runs=[(run, counts_of(run), short_time(run.started_at)) for run in runs],
        status=status_of(export, next((r for r in runs if r.status is not RunStatus.PLANNED), None)),
        can_write=ws.user.role.value != "viewer" and usable,
        # a detached export has no shared connection to lean on: only admins may remove it
        can_remove=(ws.user.role.value != "viewer" and usable) or (export.detached and ws.user.role.value == "admin"),
        **extra,
    )


def _refused(request: Request, name: str, exc: SegportError) -> Response:
    """Show a refusal's one line on the export's page (a permission or an unknown name: the error page)."""
    if isinstance(exc, (PermissionDenied, NotFound)):
        raise exc
    flash(request, exc.message, "error")
    return RedirectResponse(export_path(name), status_code=303)


@router.post("/data/exports/{name:path}/run")
def export_run(request: Request, ws: PageUser, name: str) -> Response:
    """Start a run now and go to its page (live progress)."""
    try:
        started = request.app.state.runs.start(ws, name, trigger="manual")
    except SegportError as exc:
        return _refused(request, name, exc)
    if started.run_id is not None:
        return RedirectResponse(f"/runs/{started.run_id}", status_code=303)
    if started.task_id is not None:
        flash(request, f"Queued for the workers (task {started.task_id}): the run shows in Runs once it starts.")
    else:
        flash(request, "Started: the run shows in Runs once its profiles are selected.")
    return RedirectResponse(export_path(name), status_code=303)


@router.post("/data/exports/{name:path}/dry-run")
def export_dry_run(request: Request, ws: PageUser, name: str) -> Response:
    """Plan a run without sending anything: the counts in the run's words and sample records."""
    preview = Preview(limit=DEFAULT_SHOWN)
    try:
        run = ws.run_export(name, dry_run=True, preview=preview)
    except SegportError as exc:
        return _refused(request, name, exc)
    plan = run.plan or {}
    return render(
        request,
        "exports/dryrun.html",
        role=ws.user.role.value,
        run=run,
        base=export_path(name),
        words=[(word, meaning, plan.get(word, 0)) for word, meaning in RUN_WORDS],
        other=[(key.replace("_", " "), value) for key, value in plan.items() if key not in SHOWN_ELSEWHERE],
        plan=plan,
        preview=preview,
        lines=[record_line(item) for item in preview.records],
        not_shown=preview.not_shown(),
    )


@router.post("/data/exports/{name:path}/enable")
def export_enable(request: Request, ws: PageUser, name: str) -> Response:
    """Enable the export (refreshes and schedules run it again)."""
    ws.set_export_enabled(name, True)
    flash(request, f"Export {name} enabled.")
    return RedirectResponse(export_path(name), status_code=303)


@router.post("/data/exports/{name:path}/disable")
def export_disable(request: Request, ws: PageUser, name: str) -> Response:
    """Disable the export (refreshes and schedules skip it; its sync state is kept)."""
    ws.set_export_enabled(name, False)
    flash(request, f"Export {name} disabled.")
    return RedirectResponse(export_path(name), status_code=303)


@router.get("/data/exports/{name:path}/remove")
def export_remove_page(request: Request, ws: PageUser, name: str) -> Response:
    """Confirm the removal of an export."""
    export = ws.get_export(name)
    return render(request, "exports/remove.html", role=ws.user.role.value, export=export, base=export_path(name))


@router.post("/data/exports/{name:path}/remove")
def export_remove(request: Request, ws: PageUser, name: str) -> Response:
    """Remove the export, its sync state and its schedule (its runs stay in the history)."""
    ws.remove_export(name)
    flash(request, f"Export {name} removed; its runs stay in the history.")
    return RedirectResponse("/data/exports", status_code=303)


# last: the sub-pages above match first (a name may hold "/")
@router.get("/data/exports/{name:path}")
def export_page(request: Request, ws: PageUser, name: str) -> Response:
    """Show an export: what it sends where, its last runs, its buttons."""
    return _page(request, ws, name)
