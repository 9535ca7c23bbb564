"""The schedule (the system refresh and the exports' own schedules, with next run times) and the audit."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from pydantic import Field

from ..actor import ApiUser
from .bodies import Body
from .paging import Limit, Offset, PageOf, page_of

router = APIRouter()


class RefreshSchedule(Body):
    """The system refresh's schedule: a cron line in a time zone, or null to clear it."""

    cron: str | None = Field(description="Five cron fields, or @hourly, @daily...; null clears the schedule.")
    timezone: str | None = Field(None, description="The IANA time zone of the cron line (default UTC).")


@router.get("/schedule", tags=["schedule"], summary="Show the schedules and their next runs")
def show_schedule(
    ws: ApiUser, count: int = Query(3, ge=1, le=100, description="Next run times to list per schedule.")
) -> dict[str, Any]:
    """Return the system refresh's schedule and the exports' own, each with its next run times; failing ones marked."""
    return {"refresh": ws.get_schedule(), "schedules": ws.schedule_overview(count)}


@router.put("/schedule", tags=["schedule"], summary="Set the system refresh's schedule (admins)")
def set_schedule(body: RefreshSchedule, ws: ApiUser) -> dict[str, Any]:
    """Set (or with null, clear) when every enabled export runs: the system refresh."""
    return {"refresh": ws.set_schedule(body.cron, timezone=body.timezone)}


@router.get("/audit", tags=["audit"], summary="List audit entries, newest first", response_model=PageOf[dict[str, Any]])
def list_audit(
    ws: ApiUser,
    limit: Limit = 50,
    offset: Offset = 0,
    user: str | None = Query(None, description="Only what this user did."),
    action: str | None = Query(None, description="Only this action (exports.add) or family (exports)."),
    target: str | None = Query(None, description="Only entries about this object."),
    since: str | None = Query(None, description="Only entries at or after this ISO 8601 time (UTC if no zone)."),
) -> dict[str, Any]:
    """Return a page of audit entries: who did what to which target, when, and from which address."""
    return page_of(ws.audit_page(limit=limit, offset=offset, user=user, action=action, target=target, since=since))
