"""Admin > Audit: who did what to which target, newest first, filtered by user, action and target."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from ...errors import InputError
from ...models import AuditEntry
from ..actor import PageUser
from ..templating import render
from .paging import PER_PAGE, offset_of, page_number, pager

router = APIRouter()


def detail_text(detail: dict[str, Any]) -> list[str]:
    """Return an entry's detail as ``key: value`` lines of text (values as JSON when not plain text)."""
    lines = []
    for key, value in sorted(detail.items()):
        shown = value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)
        lines.append(f"{key}: {shown}")
    return lines


@router.get("/admin/audit")
def audit_page(
    request: Request, ws: PageUser, user: str = "", action: str = "", target: str = "", page: str = "1"
) -> HTMLResponse:
    """Show a page of the audit log (admins only: the service refuses anyone else)."""
    filters = {"user": user.strip(), "action": action.strip(), "target": target.strip()}
    number = page_number(page)
    entries: list[AuditEntry] = []
    total = 0
    error = None
    try:
        found = ws.audit_page(
            limit=PER_PAGE, offset=offset_of(number), **{key: value or None for key, value in filters.items()}
        )
        entries, total = found.items, found.total
    except InputError as exc:
        error = exc.message
    return render(
        request,
        "audit.html",
        role=ws.user.role.value,
        entries=entries,
        filters=filters,
        error=error,
        detail_text=detail_text,
        pager=pager("/admin/audit", number, total, filters),
    )
