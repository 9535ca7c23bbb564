"""Server-rendered pages: Jinja2 with autoescaping, the layout's menu, flash lines and CSRF fields.

Every template extends ``base.html``. What a user typed (names, filters, reasons) is only ever
inserted as escaped text: no template marks such a value ``safe``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from ..errors import SegportError
from .problems import http_status

TEMPLATES = Path(__file__).parent / "templates"
templates = Jinja2Templates(directory=str(TEMPLATES))

# The console's menu, in the product's order: (section, label, path, who sees it).
MENU: list[tuple[str, str, str, str]] = [
    ("Data", "Exports", "/data/exports", "everyone"),
    ("Data", "Segments", "/data/segments", "everyone"),
    ("Data", "Profiles", "/data/profiles", "everyone"),
    ("Data", "Runs", "/runs", "everyone"),
    ("Admin", "Connections", "/admin/connections", "everyone"),
    ("Admin", "Users", "/admin/users", "everyone"),
    ("Admin", "Schedule", "/admin/schedule", "everyone"),
    ("Admin", "Audit", "/admin/audit", "admin"),
]


def csrf_token(request: Request) -> str:
    """Return the CSRF token every state-changing form of this page must carry (field ``csrftoken``)."""
    make = request.scope.get("csrftoken")
    return str(make()) if callable(make) else ""


def flash(request: Request, message: str, kind: str = "ok") -> None:
    """Keep one line to show on the next page this browser loads (after a redirect)."""
    # a new list, not an append: the session is saved only when one of its keys is set
    request.session["flash"] = [*request.session.get("flash", []), [kind, message]]


def render(request: Request, template: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render ``template`` with the layout's context: the user, their role, the menu, flash lines, CSRF."""
    role = context.pop("role", None)
    shown = [item for item in MENU if item[3] == "everyone" or role == item[3]]
    base = {
        "user": getattr(request.state, "user", None),
        "role": role,
        "menu": shown,
        "flashes": request.session.pop("flash", []) if "session" in request.scope else [],
        "csrftoken": csrf_token(request),
        "path": request.url.path,
    }
    return templates.TemplateResponse(request, template, {**base, **context}, status_code=status_code)


def render_error(request: Request, exc: SegportError) -> HTMLResponse:
    """Render a service error as a page: its one line, and the HTTP status it maps to."""
    return render(request, "error.html", status_code=http_status(exc), error=exc.message, code=exc.exit_status.name)
