"""Admin > Schedule: the system refresh (cron line and time zone), every schedule's next runs, failing ones."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ...errors import PermissionDenied, SegportError
from ...models import Role
from ...scheduling import split_schedule
from ..actor import PageUser
from ..templating import flash, render

router = APIRouter()

NEXT_RUNS = 3  # next run times shown per schedule


def _page(request: Request, ws: PageUser, *, status_code: int = 200, **form: Any) -> HTMLResponse:
    refresh = ws.get_schedule()
    cron, zone = split_schedule(refresh) if refresh else ("", None)
    context: dict[str, Any] = {"cron": cron, "timezone": zone or "UTC", "errors": {}, **form}
    return render(
        request,
        "schedule.html",
        status_code=status_code,
        role=ws.user.role.value,
        is_admin=ws.user.role is Role.ADMIN,
        refresh=refresh,
        rows=ws.schedule_overview(NEXT_RUNS),
        failures=ws.schedule_failures(),
        **context,
    )


@router.get("/admin/schedule")
def schedule_page(request: Request, ws: PageUser) -> HTMLResponse:
    """Show the system refresh's schedule, every schedule's next run times, and the failing ones."""
    return _page(request, ws)


@router.post("/admin/schedule")
def set_schedule(
    request: Request,
    ws: PageUser,
    cron: Annotated[str, Form()] = "",
    timezone: Annotated[str, Form()] = "",
    clear: Annotated[str | None, Form()] = None,
) -> Response:
    """Set the system refresh's cron line in a time zone, or clear it (admins; the service decides)."""
    try:
        stored = ws.set_schedule(None if clear is not None else cron.strip() or None, timezone=timezone.strip() or None)
    except PermissionDenied:
        raise
    except SegportError as exc:
        field = "timezone" if exc.message.startswith("unknown time zone") else "cron"
        return _page(request, ws, status_code=422, cron=cron, timezone=timezone, errors={field: exc.message})
    flash(request, f"The system refresh runs on {stored}." if stored else "The system refresh is not scheduled.")
    return RedirectResponse("/admin/schedule", status_code=303)
