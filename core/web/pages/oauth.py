"""A connection's "Authenticate with <platform>": the OAuth2 redirect through the admin's browser.

``POST /admin/connections/{name}/authorize`` begins the authorization (admins only, a CSRF-checked
form), keeps its state in this browser's signed session and sends the browser to the platform;
the platform sends it back to ``GET /oauth/callback``, which checks the state against the session
and the workspace (:meth:`segport.Workspace.complete_authorization`), stores the tokens and returns
to the connection's page. The redirect URI is ``<public URL>/oauth/callback`` (``segport serve
--public-url``), else this request's own scheme, host and port: register it with the platform's app.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from ...errors import AuthError
from ...workspace import Workspace
from ..actor import PageUser
from ..templating import flash

router = APIRouter()

PENDING_KEY = "oauth"  # the session's begun authorization: {"connection", "state", "redirect_uri"}
CALLBACK = "/oauth/callback"


def connection_page(name: str) -> str:
    """Return the path of a connection's page."""
    return f"/admin/connections/{quote(name, safe='')}"


def redirect_uri(request: Request) -> str:
    """Return the callback's absolute URL, as browsers reach this server.

    That is the public URL's, unless it names no host a browser can reach (``0.0.0.0``, ``::``, from
    ``--host 0.0.0.0`` without ``--public-url``): then the host this request was sent to.
    """
    public: str | None = request.app.state.public_url
    if public and urlsplit(public).hostname not in ("0.0.0.0", "::"):
        return public.rstrip("/") + CALLBACK
    return str(request.url.replace(path=CALLBACK, query="", fragment=""))


def send_to_platform(request: Request, ws: Workspace, name: str) -> Response:
    """Begin the connection's OAuth2 authorization (state kept in this browser's session); redirect to the platform."""
    uri = redirect_uri(request)
    start = ws.begin_authorization(name, uri)
    request.session[PENDING_KEY] = {"connection": name, "state": start.state, "redirect_uri": uri}
    return RedirectResponse(start.url, status_code=303)


@router.post("/admin/connections/{name:path}/authorize")
def authorize(request: Request, ws: PageUser, name: str) -> Response:
    """Begin the connection's OAuth2 authorization and send the browser to the platform's consent page."""
    return send_to_platform(request, ws, name)


@router.get(CALLBACK, name="oauth_callback")
def callback(request: Request, ws: PageUser) -> Response:
    """Finish the authorization this browser began: check the state, trade the code, store the tokens."""
    pending: Any = request.session.pop(PENDING_KEY, None)
    if not isinstance(pending, dict) or not all(isinstance(pending.get(k), str) for k in ("connection", "state")):
        raise AuthError(
            "no authorization was begun in this browser session (or it was used already): open the connection "
            "and press its Authenticate button again"
        )
    query = dict(request.query_params)
    connection = ws.complete_authorization(
        pending["connection"],
        state=query.get("state", ""),
        expected_state=pending["state"],
        redirect_uri=str(pending.get("redirect_uri", "")),
        query=query,
    )
    title = ws.registry.get(connection.type).title
    flash(request, f"Connection {connection.name} is authenticated with {title}.")
    return RedirectResponse(connection_page(connection.name), status_code=303)
