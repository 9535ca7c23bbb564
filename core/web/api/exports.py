"""Exports: what to send where; saving one never runs it. Runs start here (202) and dry runs plan here."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request, Response
from pydantic import Field

from ...cli._dryrun import plan_document
from ...errors import ConfigError, InputError
from ...pipeline.preview import DEFAULT_SHOWN, Preview
from ...scheduling import in_zone, zone
from ..actor import ApiUser
from .bodies import Body
from .documents import RunStarted
from .paging import Limit, Offset, PageOf, jsonable, page_of

router = APIRouter(tags=["exports"])

MAX_SHOWN = 1000  # records of each action a dry run may list


class NewExport(Body):
    """An export to save: its connection, segments, data matching, options and schedule."""

    name: str = Field(description="The export's name.")
    connection: str = Field(description="The connection to send to.")
    segments: list[str] = Field(description="The segments to export.")
    email_field: str = Field(description="The profile attribute holding the email.")
    mapping: dict[str, str] = Field(default_factory=dict, description="Destination field -> profile attribute.")
    options: dict[str, Any] = Field(default_factory=dict, description="The destination's export options.")
    schedule: str | None = Field(None, description="Its own schedule: five cron fields, or @hourly, @daily...")
    timezone: str | None = Field(None, description="The IANA time zone of the schedule (default UTC).")
    enabled: bool = Field(True, description="Whether refreshes and schedules run it.")
    force: bool = Field(False, description="Save even if a segment's marker collides with another export's.")


class ExportChanges(Body):
    """Changes to an export, as ``segport exports edit`` (and ``enable``/``disable``) make them."""

    segments: list[str] | None = Field(None, description="Replace the segments.")
    email_field: str | None = Field(None, description="The profile attribute holding the email.")
    mapping: dict[str, str] | None = Field(None, description="Destination fields to map (merged).")
    unmap: list[str] = Field(default_factory=list, description="Destination fields to stop sending.")
    options: dict[str, Any] | None = Field(None, description="Options to change (merged; null removes one).")
    schedule: str | None = Field(None, description="A new schedule; null removes it.")
    timezone: str | None = Field(None, description="The IANA time zone of the schedule.")
    connection: str | None = Field(None, description="Move to another connection.")
    verify_every: int | None = Field(None, ge=0, description="Every Nth scheduled run verifies first (0: never).")
    enabled: bool | None = Field(None, description="Enable or disable it for refreshes and schedules.")
    check: bool = Field(True, description="Check a changed destination with the platform.")
    force: bool = Field(False, description="Accept a move to another account, or colliding markers.")


class RunRequest(Body):
    """How to run: ``full`` sends every selected profile, not only the changes."""

    full: bool = Field(False, description="Send every selected profile, not only what changed.")


def _zoned(schedule: str | None, timezone: str | None) -> str | None:
    if schedule is None or timezone is None:
        return schedule
    zone(timezone)  # an unknown zone is refused before anything else
    return in_zone(schedule, timezone)


@router.get("/exports", summary="List exports with their last run", response_model=PageOf[dict[str, Any]])
def list_exports(
    ws: ApiUser,
    limit: Limit = 50,
    offset: Offset = 0,
    connection: str | None = Query(None, description="Only those attached to this connection."),
    enabled: bool | None = Query(None, description="Only enabled (true) or disabled (false) ones."),
    search: str | None = Query(None, description="Only those whose name holds this (any case)."),
) -> dict[str, Any]:
    """Return a page of exports by name, each with its last run (dry runs aside)."""
    page = ws.exports_page(limit=limit, offset=offset, connection=connection, enabled=enabled, search=search)
    return page_of(page)


@router.post("/exports", status_code=201, summary="Save an export (it does not run)")
def add_export(body: NewExport, ws: ApiUser, response: Response) -> dict[str, Any]:
    """Save an export; it runs on a run request, a refresh or its schedule."""
    export = ws.add_export(
        body.name,
        connection=body.connection,
        segments=body.segments,
        email_field=body.email_field,
        mapping=body.mapping,
        options=body.options,
        schedule=_zoned(body.schedule, body.timezone),
        enabled=body.enabled,
        force=body.force,
    )
    response.headers["Location"] = f"/api/v1/exports/{quote(export.name, safe='')}"
    return export.to_dict()


@router.get("/exports/{name:path}", summary="Show an export")
def show_export(name: str, ws: ApiUser) -> dict[str, Any]:
    """Return one export."""
    return ws.get_export(name).to_dict()


@router.patch("/exports/{name:path}", summary="Change, enable or disable an export")
def edit_export(name: str, body: ExportChanges, ws: ApiUser) -> dict[str, Any]:
    """Change an export in place (the sync state is kept whenever it can be), or enable or disable it."""
    asked = body.model_fields_set - {"check", "force", "timezone"}
    if not asked and body.timezone is None:
        raise ConfigError("nothing to change: give a field of the export to change, or enabled", param="body")
    edits = asked - {"verify_every", "enabled"}
    schedule = body.schedule
    if body.timezone is not None and "schedule" not in asked:  # a new zone for the schedule it has
        schedule = ws.get_export(name).schedule
        if not schedule:
            raise InputError(
                f"export {name!r} has no schedule to put in a time zone: give schedule too", param="timezone"
            )
        edits.add("schedule")
    outcome: dict[str, Any] = {"changes": {}, "sync_state": "kept", "notes": []}
    if edits:
        edited = ws.change_export(
            name,
            segments=body.segments,
            email_field=body.email_field,
            mapping=body.mapping,
            unmap=body.unmap,
            options=body.options,
            schedule=_zoned(schedule, body.timezone),
            clear_schedule="schedule" in asked and schedule is None,
            connection=body.connection,
            check=body.check,
            force=body.force,
        )
        outcome = {"changes": dict(edited.changes), "sync_state": edited.sync_state, "notes": list(edited.notes)}
    if body.verify_every is not None:
        before = ws.get_export(name).verify_every
        after = ws.set_verify_every(name, body.verify_every).verify_every
        if before != after:
            outcome["changes"]["verify_every"] = {"old": before, "new": after}
    if body.enabled is not None:
        before_enabled = ws.get_export(name).enabled
        ws.set_export_enabled(name, body.enabled)
        if before_enabled != body.enabled:
            outcome["changes"]["enabled"] = {"old": before_enabled, "new": body.enabled}
    return {**ws.get_export(name).to_dict(), **jsonable(outcome)}


@router.delete("/exports/{name:path}", summary="Remove an export")
def remove_export(name: str, ws: ApiUser) -> dict[str, Any]:
    """Remove an export, its sync state and its schedule (its runs stay in the history)."""
    ws.remove_export(name)
    return {"removed": "export", "name": name}


@router.post(
    "/exports/{name:path}/runs", status_code=202, summary="Start a run of an export", response_model=RunStarted
)
def start_run(
    name: str, request: Request, response: Response, ws: ApiUser, body: RunRequest | None = None
) -> dict[str, Any]:
    """Start a run now (202): its id to follow at ``/api/v1/runs/{id}`` (with workers: the queued task's id)."""
    started = request.app.state.runs.start(ws, name, full=body.full if body else False, trigger="api")
    if started.run_id is not None:
        response.headers["Location"] = f"/api/v1/runs/{started.run_id}"
    return dict(started.to_dict())


@router.post("/exports/{name:path}/dry-run", summary="Plan a run of an export, sending nothing")
def dry_run(
    name: str,
    ws: ApiUser,
    records: int = Query(
        DEFAULT_SHOWN, ge=0, le=MAX_SHOWN, description="List up to this many records of each action (0: counts only)."
    ),
) -> dict[str, Any]:
    """Run the pre-flight checks (creating nothing) and answer the plan in the run's words, with sample records."""
    preview = Preview(limit=records)
    run = ws.run_export(name, dry_run=True, preview=preview, trigger="api")
    return dict(jsonable(plan_document(run, preview)))
