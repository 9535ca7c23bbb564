"""Data > Profiles: how many there are and their key, uploading a file of them, and browsing them by filter."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ...errors import InputError, PermissionDenied, SegportError
from ...models import ProfilePage
from ..actor import PageUser
from ..templating import flash, render
from .paging import PER_PAGE, offset_of, page_number, pager
from .uploads import saved_upload

router = APIRouter()

WRITERS = ("admin", "contributor")  # roles shown the upload form (the services decide)
MAX_COLUMNS = 20  # attributes shown as columns when browsing; the others are left out of the table


def columns_of(found: ProfilePage, key_column: str | None) -> list[str]:
    """Return the attributes the page's profiles have but their key, in the order they first appear (at most 20)."""
    names: dict[str, None] = {}
    for _, attributes in found.profiles:
        names.update(dict.fromkeys(attributes))
    names.pop(key_column or "", None)
    return list(names)[:MAX_COLUMNS]


def _page(
    request: Request, ws: PageUser, where: str, number: int, *, status_code: int = 200, **form: Any
) -> HTMLResponse:
    errors: dict[str, str] = dict(form.pop("errors", {}))
    found = ProfilePage([], 0, offset_of(number), PER_PAGE)
    try:
        found = ws.list_profiles(where=where.strip() or None, limit=PER_PAGE, offset=offset_of(number))
    except InputError as exc:
        errors["where"] = exc.message
    key_column = ws.profile_key()
    return render(
        request,
        "profiles.html",
        status_code=status_code,
        role=ws.user.role.value,
        can_write=ws.user.role.value in WRITERS,
        total=ws.count_profiles(),
        key_column=key_column,
        found=found,
        columns=columns_of(found, key_column),
        where=where,
        pager=pager("/data/profiles", number, found.total, {"where": where}),
        errors=errors,
        **{"key": "", "replace": False, **form},
    )


@router.get("/data/profiles")
def profiles_page(request: Request, ws: PageUser, where: str = "", page: str = "1") -> HTMLResponse:
    """Show the profile counts, the upload form, and a page of profiles (matching a filter)."""
    return _page(request, ws, where, page_number(page))


@router.post("/data/profiles")
def upload_profiles(
    request: Request,
    ws: PageUser,
    key: Annotated[str, Form()] = "",
    replace: Annotated[str | None, Form()] = None,
    profiles_file: Annotated[UploadFile | None, File()] = None,
) -> Response:
    """Load an uploaded CSV or JSONL file (gzip too) of profiles: every row or none."""
    replacing = replace is not None
    try:
        with saved_upload(profiles_file, "profiles_file") as path:
            loaded = ws.load_profiles(path, key=key.strip() or None, replace=replacing)
    except PermissionDenied:
        raise
    except SegportError as exc:
        field = "key" if exc.param == "profile_key" else "profiles_file"
        return _page(request, ws, "", 1, status_code=422, key=key, replace=replacing, errors={field: exc.message})
    rekeyed = f" Re-keyed from {loaded.rekeyed_from} to {loaded.key}." if loaded.rekeyed_from else ""
    flash(
        request,
        f"Loaded {loaded.loaded} rows: {loaded.added} added, {loaded.updated} updated,"
        f" {loaded.unchanged} unchanged, {loaded.removed} removed; {loaded.profiles} profiles now.{rekeyed}",
    )
    return RedirectResponse("/data/profiles", status_code=303)
