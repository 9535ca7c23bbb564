"""Admin > Users: users and their roles; admins invite people, change roles, remove users, send new invites."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ...errors import NotFound, PermissionDenied, SegportError
from ...models import Role
from ..actor import PageUser
from ..templating import flash, render
from .paging import PER_PAGE, offset_of, page_number, pager

router = APIRouter()

ROLES = [role.value for role in Role]


def invite_link(request: Request, token: str) -> str:
    """Return the link that lets an invited user set their password (on the server's public address)."""
    base = request.app.state.public_url or str(request.base_url)
    return f"{str(base).rstrip('/')}/invite/{token}"


def _list(request: Request, ws: PageUser, number: int = 1, *, status_code: int = 200, **extra: Any) -> HTMLResponse:
    found = ws.users_page(limit=PER_PAGE, offset=offset_of(number))
    context: dict[str, Any] = {"name": "", "new_role": "viewer", "errors": {}, "invited": None, **extra}
    return render(
        request,
        "users.html",
        status_code=status_code,
        role=ws.user.role.value,
        is_admin=ws.user.role is Role.ADMIN,
        users=found.items,
        roles=ROLES,
        me=ws.user.name,
        pager=pager("/admin/users", number, found.total, {}),
        **context,
    )


@router.get("/admin/users")
def users_page(request: Request, ws: PageUser, page: str = "1") -> HTMLResponse:
    """List the users with their roles (and, for admins, the forms that manage them)."""
    return _list(request, ws, page_number(page))


@router.post("/admin/users")
def invite_user(
    request: Request,
    ws: PageUser,
    name: Annotated[str, Form()] = "",
    role: Annotated[str, Form()] = "viewer",
) -> Response:
    """Add a user and show their one-time invite link, once (it is not kept anywhere to show again)."""
    try:
        user = ws.add_user(name, role)
    except PermissionDenied:
        raise
    except SegportError as exc:
        field = "role" if exc.message.startswith("unknown role") else "name"
        return _list(request, ws, status_code=422, name=name, new_role=role, errors={field: exc.message})
    token = ws.identities.invite(user.name)
    return _list(request, ws, invited=(user.name, invite_link(request, token)))


@router.post("/admin/users/{name:path}/invite")
def new_invite(request: Request, name: str, ws: PageUser) -> Response:
    """Send a user a new invite link (their older unused ones stop working); show it once."""
    token = ws.identities.invite(name)
    return _list(request, ws, invited=(name, invite_link(request, token)))


@router.post("/admin/users/{name:path}/role")
def change_role(request: Request, name: str, ws: PageUser, role: Annotated[str, Form()] = "") -> Response:
    """Give a user another role (the last admin keeps theirs: the service's line says so)."""
    try:
        user = ws.set_user_role(name, role)
    except PermissionDenied:
        raise
    except SegportError as exc:
        flash(request, exc.message, "error")
    else:
        flash(request, f"{user.name} is now {user.role.value}.")
    return RedirectResponse("/admin/users", status_code=303)


@router.get("/admin/users/{name:path}/remove")
def confirm_removal(request: Request, name: str, ws: PageUser) -> HTMLResponse:
    """Ask before removing a user."""
    user = next((u for u in ws.list_users() if u.name == name), None)
    if user is None:
        raise NotFound(f"no user named {name!r}: see Admin > Users", kind="user", name=name)
    return render(request, "user_remove.html", role=ws.user.role.value, target=user)


@router.post("/admin/users/{name:path}/remove")
def remove_user(request: Request, name: str, ws: PageUser) -> Response:
    """Remove a user: from then on they can do nothing (the last admin cannot go)."""
    try:
        ws.remove_user(name)
    except PermissionDenied:
        raise
    except SegportError as exc:
        flash(request, exc.message, "error")
    else:
        flash(request, f"User {name} removed.")
    return RedirectResponse("/admin/users", status_code=303)
