"""Data > Segments: segments with their member counts, defining one by a filter (live count), loading keys, removal."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ...errors import InputError, NotFound, PermissionDenied, SegportError
from ..actor import PageUser
from ..templating import flash, render
from .paging import PER_PAGE, offset_of, page_number, pager
from .uploads import saved_upload

router = APIRouter()

WRITERS = ("admin", "contributor")  # roles shown the write controls (the services decide)


def _list(request: Request, ws: PageUser, number: int, *, status_code: int = 200, **form: Any) -> HTMLResponse:
    found = ws.segments_page(limit=PER_PAGE, offset=offset_of(number))
    defaults: dict[str, Any] = {"name": "", "where": "", "errors": {}, "load_name": "", "load_key": "id"}
    return render(
        request,
        "segments.html",
        status_code=status_code,
        role=ws.user.role.value,
        can_write=ws.user.role.value in WRITERS,
        segments=found.items,
        pager=pager("/data/segments", number, found.total, {}),
        **{**defaults, **form},
    )


@router.get("/data/segments")
def segments_page(request: Request, ws: PageUser, page: str = "1") -> HTMLResponse:
    """List the segments with their member counts, and the forms that define or load one."""
    return _list(request, ws, page_number(page))


@router.get("/data/segments/count")
def filter_count(request: Request, ws: PageUser, where: str = "") -> HTMLResponse:
    """Return how many profiles a filter matches (or its error line), and the attributes no profile has."""
    count: int | None = None
    error = unknown = None
    if where.strip():
        try:
            count = ws.count_profiles(where)
            unknown = ws.unknown_attributes(where)
        except InputError as exc:
            error = exc.message
    return render(request, "segment_count.html", role=ws.user.role.value, count=count, error=error, unknown=unknown)


@router.post("/data/segments")
def define_segment(
    request: Request,
    ws: PageUser,
    name: Annotated[str, Form()] = "",
    where: Annotated[str, Form()] = "",
) -> Response:
    """Save a segment defined by a filter, then show the list (errors next to their field)."""
    try:
        segment = ws.define_segment(name, where)
    except PermissionDenied:
        raise
    except SegportError as exc:
        field = "where" if isinstance(exc, InputError) or "segment name" not in exc.message else "name"
        return _list(request, ws, 1, status_code=422, name=name, where=where, errors={field: exc.message})
    flash(request, f"Segment {segment.name} saved.")
    return RedirectResponse("/data/segments", status_code=303)


@router.post("/data/segments/load")
def load_segment(
    request: Request,
    ws: PageUser,
    name: Annotated[str, Form()] = "",
    key: Annotated[str, Form()] = "id",
    keys_file: Annotated[UploadFile | None, File()] = None,
) -> Response:
    """Create or replace a static segment from an uploaded file of profile keys."""
    try:
        with saved_upload(keys_file, "keys_file") as path:
            loaded = ws.load_segment(name, path, key=key.strip() or "id")
    except PermissionDenied:
        raise
    except SegportError as exc:
        field = "load_name" if "segment name" in exc.message else "keys_file"
        errors = {field: exc.message}
        return _list(request, ws, 1, status_code=422, load_name=name, load_key=key, errors=errors)
    unknown = f"; {loaded.unknown_keys} keys name no profile" if loaded.unknown_keys else ""
    flash(request, f"Segment {loaded.segment} loaded: {loaded.members} members{unknown}.")
    return RedirectResponse("/data/segments", status_code=303)


@router.get("/data/segments/{name:path}/remove")
def confirm_removal(request: Request, name: str, ws: PageUser) -> HTMLResponse:
    """Ask before removing a segment."""
    found = ws.segments_page(limit=PER_PAGE, search=name).items
    segment = next((s for s in found if s.name == name), None)
    if segment is None:
        raise NotFound(f"no segment named {name!r}: see Data > Segments", kind="segment", name=name)
    return render(request, "segment_remove.html", role=ws.user.role.value, segment=segment)


@router.post("/data/segments/{name:path}/remove")
def remove_segment(request: Request, name: str, ws: PageUser) -> Response:
    """Remove a segment no export uses."""
    ws.remove_segment(name)
    flash(request, f"Segment {name} removed.")
    return RedirectResponse("/data/segments", status_code=303)
