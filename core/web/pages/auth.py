"""Signing in and out, and setting a password from an admin's invite link."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from ...errors import SegportError, TooManyAttempts
from ..actor import SESSION_KEY, AnyUser, client_address
from ..templating import flash, render

router = APIRouter()


def local_path(target: str | None) -> str:
    """Return ``target`` when it is a path of this server, else the home page (no open redirect)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


@router.get("/")
def home(request: Request, ws: AnyUser) -> Response:
    """Send a signed-in user to Data > Exports, anyone else to the sign-in page."""
    return RedirectResponse("/data/exports" if ws.context.user_name else "/login", status_code=303)


@router.get("/login")
def login_page(request: Request, ws: AnyUser, next: str = "/") -> Response:
    """Show the sign-in form (a signed-in user goes on to ``next``)."""
    if ws.context.user_name:
        return RedirectResponse(local_path(next), status_code=303)
    return render(request, "login.html", next=local_path(next), username="", error=None)


@router.post("/login")
def login(
    request: Request,
    ws: AnyUser,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    """Check the password; on success start a server-side session and go on to ``next``."""
    try:
        user = ws.identities.login(username.strip(), password, client=client_address(request))
    except TooManyAttempts as exc:
        return render(
            request, "login.html", status_code=429, next=local_path(next), username=username, error=exc.message
        )
    except SegportError as exc:
        return render(
            request, "login.html", status_code=401, next=local_path(next), username=username, error=exc.message
        )
    request.session.clear()  # a new session id at every sign-in (no fixation)
    request.session[SESSION_KEY] = ws.identities.start_session(user.name, client=client_address(request))
    return RedirectResponse(local_path(next), status_code=303)


@router.post("/logout")
def logout(request: Request, ws: AnyUser) -> Response:
    """End the session on the server (the cookie alone no longer signs anyone in) and forget it."""
    session_id = request.session.get(SESSION_KEY)
    if isinstance(session_id, str):
        ws.identities.end_session(session_id)
    request.session.clear()
    flash(request, "You are logged out.")
    return RedirectResponse("/login", status_code=303)


@router.get("/invite/{token}")
def invite_page(request: Request, token: str) -> Response:
    """Show the form that sets a password from an invite link."""
    return render(request, "invite.html", token=token, error=None)


@router.post("/invite")
def accept_invite(
    request: Request,
    ws: AnyUser,
    token: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    confirm: Annotated[str, Form()] = "",
) -> Response:
    """Set the invited user's password (the link then stops working) and sign them in."""
    if password != confirm:
        return render(
            request,
            "invite.html",
            status_code=422,
            token=token,
            error="the two passwords differ: type the same one twice",
        )
    try:
        user = ws.identities.accept_invite(token, password)
    except SegportError as exc:
        return render(request, "invite.html", status_code=422, token=token, error=exc.message)
    request.session.clear()
    request.session[SESSION_KEY] = ws.identities.start_session(user.name, client=client_address(request))
    flash(request, f"Welcome, {user.name}: your password is set.")
    return RedirectResponse("/", status_code=303)
