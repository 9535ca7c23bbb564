"""Your account: change your password, and your API tokens (created, shown once, listed, revoked)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ...errors import PermissionDenied, SegportError, TooManyAttempts
from ..actor import SESSION_KEY, PageUser, client_address
from ..templating import flash, render

router = APIRouter()

# Lifetimes offered for a new API token: (form value, label, seconds; None: never expires).
LIFETIMES: list[tuple[str, str, int | None]] = [
    ("90", "90 days", 90 * 86400),
    ("30", "30 days", 30 * 86400),
    ("365", "1 year", 365 * 86400),
    ("never", "Never", None),
]


def _page(request: Request, ws: PageUser, *, status_code: int = 200, **extra: Any) -> HTMLResponse:
    context: dict[str, Any] = {"errors": {}, "created": None, "token_name": "", "lifetime": "90", **extra}
    return render(
        request,
        "account.html",
        status_code=status_code,
        role=ws.user.role.value,
        me=ws.user,
        tokens=ws.list_tokens(),
        lifetimes=LIFETIMES,
        **context,
    )


@router.get("/account")
def account_page(request: Request, ws: PageUser) -> HTMLResponse:
    """Show the password form and the user's API tokens."""
    return _page(request, ws)


@router.post("/account/password")
def change_password(
    request: Request,
    ws: PageUser,
    current: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    confirm: Annotated[str, Form()] = "",
) -> Response:
    """Set a new password once the current one is checked; the user's other sessions end."""
    name = ws.user.name
    try:
        ws.identities.login(name, current, client=client_address(request))
    except TooManyAttempts as exc:
        return _page(request, ws, status_code=429, errors={"current": exc.message})
    except SegportError:
        return _page(request, ws, status_code=422, errors={"current": "the current password is wrong"})
    if password != confirm:
        return _page(request, ws, status_code=422, errors={"confirm": "the two new passwords differ: type it twice"})
    try:
        ws.set_password(name, password)
    except PermissionDenied:
        raise
    except SegportError as exc:
        return _page(request, ws, status_code=422, errors={"password": exc.message})
    request.session.clear()  # every session of the user ended with the old password: this browser gets a new one
    request.session[SESSION_KEY] = ws.identities.start_session(name, client=client_address(request))
    flash(request, "Your password is changed; your other sessions are signed out.")
    return RedirectResponse("/account", status_code=303)


@router.post("/account/tokens")
def create_token(
    request: Request,
    ws: PageUser,
    name: Annotated[str, Form()] = "",
    lifetime: Annotated[str, Form()] = "90",
) -> Response:
    """Create an API token and show its secret, once (only its digest is stored)."""
    seconds = next((s for value, _, s in LIFETIMES if value == lifetime), LIFETIMES[0][2])
    try:
        token, secret = ws.create_token(name, expires_in_seconds=seconds)
    except PermissionDenied:
        raise
    except SegportError as exc:
        return _page(request, ws, status_code=422, token_name=name, lifetime=lifetime, errors={"token": exc.message})
    return _page(request, ws, created=(token.name, secret))


@router.post("/account/tokens/{name:path}/revoke")
def revoke_token(request: Request, name: str, ws: PageUser) -> Response:
    """Revoke one of the user's API tokens: requests sending it are refused from now on."""
    ws.revoke_token(name)
    flash(request, f"API token {name} revoked.")
    return RedirectResponse("/account", status_code=303)
