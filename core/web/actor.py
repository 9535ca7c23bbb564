"""Who is asking: the one place that turns a request into the acting user.

In order: a ``segport_actor_from_request`` hook (a plugin may trust a proxy's header, say), then an
``Authorization: Bearer TOKEN`` header (the HTTP API; a request that sends one is judged by it
alone, never by a cookie), then the signed session cookie of a signed-in browser. What the actor
may then do is decided by the services, as for the CLI (``segport_permission`` hook, role matrix).
"""

from __future__ import annotations

from typing import Annotated, Iterator

from fastapi import Depends, Request

from ..errors import Unauthenticated
from ..workspace import Workspace
from .pool import Workspaces

SESSION_KEY = "sid"  # the signed session cookie holds only the server-side session's id


class LoginRequired(Exception):
    """A page needs a signed-in user: the browser is sent to the sign-in page, then back."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


def client_address(request: Request) -> str | None:
    """Return the client's address (the proxy's view of it when the server trusts the proxy's headers)."""
    return request.client.host if request.client else None


def actor_name(request: Request, ws: Workspace) -> str | None:
    """Return the name of the user making ``request``, or None when nobody is signed in.

    :raises Unauthenticated: an ``Authorization`` header that is not a valid, unexpired API token.
    """
    hooked = ws.pm.hook.segport_actor_from_request(request=request)
    if hooked is not None:
        return str(hooked)
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("send the API token as 'Authorization: Bearer TOKEN' (see 'segport tokens create')")
        return ws.identities.authenticate_token(token.strip()).name
    session_id = request.session.get(SESSION_KEY)
    if isinstance(session_id, str):
        user = ws.identities.session_user(session_id)
        if user is not None:
            return user.name
        request.session.clear()  # expired or ended elsewhere: the browser signs in again
    return None


def _pool(request: Request) -> Workspaces:
    pool: Workspaces = request.app.state.workspaces
    return pool


def maybe_signed_in(request: Request) -> Iterator[Workspace]:
    """Lend the request a workspace acting as its user, or as nobody (the sign-in pages)."""
    with _pool(request).acting(None, client=client_address(request)) as ws:
        ws.context.user_name = actor_name(request, ws)
        request.state.user = ws.context.user_name
        yield ws


def api_user(request: Request) -> Iterator[Workspace]:
    """Lend an API request a workspace acting as its user; nobody signed in is a 401 problem document."""
    with _pool(request).acting(None, client=client_address(request)) as ws:
        name = actor_name(request, ws)
        if name is None:
            raise Unauthenticated("sign in first: send 'Authorization: Bearer TOKEN' (see 'segport tokens create')")
        ws.context.user_name = request.state.user = name
        yield ws


def page_user(request: Request) -> Iterator[Workspace]:
    """Lend a page a workspace acting as its signed-in user; nobody signed in goes to the sign-in page."""
    with _pool(request).acting(None, client=client_address(request)) as ws:
        name = actor_name(request, ws)
        if name is None:
            raise LoginRequired(request.url.path)
        ws.context.user_name = request.state.user = name
        yield ws


# The routes' parameter types: ``ws: PageUser`` lends the route a workspace acting as its user.
PageUser = Annotated[Workspace, Depends(page_user)]
ApiUser = Annotated[Workspace, Depends(api_user)]
AnyUser = Annotated[Workspace, Depends(maybe_signed_in)]
