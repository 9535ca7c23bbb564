"""The ASGI application of ``segport serve``: the console's pages and the JSON API over the services.

Layers, outermost first: :class:`~segport.web.security.AccessLog`, the security headers, CSRF
(asgi-csrf: a signed token in a cookie, echoed by every state-changing form or the ``x-csrftoken``
header; requests with a bearer token are exempt, as no browser sends one by itself), the signed
session cookie (Starlette's, holding only a server-side session id), then FastAPI's routes. The
signing key is a file of the workspace folder (``web.key``, 0600), made at the first start.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from asgi_csrf import asgi_csrf
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware

from ..errors import ExitStatus, SegportError
from ..executor import Executor
from ..private import create_file
from . import csrf_compat
from .actor import LoginRequired
from .pool import Workspaces
from .problems import error_problem, problem
from .runner import ConsoleRuns
from .security import AccessLog, SecurityHeaders
from .templating import render_error

KEY_FILE = "web.key"
SESSION_COOKIE = "segport_session"
CSRF_COOKIE = "segport_csrf"
SESSION_MAX_AGE_S = 12 * 3600
STATIC = Path(__file__).parent / "static"


def signing_key(home: Path) -> str:
    """Return the server's signing key, kept in the workspace folder (made, 0600, on the first call)."""
    path = home / KEY_FILE
    if create_file(path):
        path.write_text(secrets.token_urlsafe(48))
    return path.read_text().strip()


def create_app(
    home: str | Path,
    *,
    database_url: str | None = None,
    executor: Executor | None = None,
    public_url: str | None = None,
) -> Any:
    """Return the ASGI application serving the workspace at ``home``.

    :param public_url: where browsers reach the server (invite links, OAuth redirects); an
        ``https://`` one marks the cookies ``Secure``.
    """
    from . import api, pages  # the routes import FastAPI's machinery; loaded with the app

    workspaces = Workspaces(Path(home), database_url, executor=executor)
    home = workspaces.first.home
    secure = bool(public_url and public_url.startswith("https://"))
    app = FastAPI(
        title="segport",
        version=_version(),
        openapi_url="/api/v1/openapi.json",
        docs_url=None,  # the interactive pages load script from a CDN: not under this CSP
        redoc_url=None,
    )
    app.state.workspaces = workspaces
    app.state.runs = ConsoleRuns(home, database_url, executor)
    app.state.public_url = public_url
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(api.router)
    app.include_router(pages.router)
    app.add_exception_handler(SegportError, _segport_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(LoginRequired, _login_required)
    key = signing_key(home)
    csrf_compat.install()
    app.add_middleware(
        SessionMiddleware,
        secret_key=key,
        session_cookie=SESSION_COOKIE,
        max_age=SESSION_MAX_AGE_S,
        same_site="lax",
        https_only=secure,
    )
    wrapped = asgi_csrf(
        app,
        signing_secret=key,
        cookie_name=CSRF_COOKIE,
        cookie_secure=secure,
        cookie_samesite="Strict",
        always_protect={"/login"},  # a forged sign-in (as the attacker) is refused too
    )
    return AccessLog(SecurityHeaders(wrapped))


def _version() -> str:
    from .. import __version__

    return __version__


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/")


async def _segport_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SegportError)
    if _wants_json(request):
        return error_problem(request, exc)
    return render_error(request, exc)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
    detail = f"{where}: {first.get('msg', 'invalid')}" if where else str(first.get("msg", "invalid request"))
    return problem(400, f"bad request: {detail}", code=ExitStatus.USAGE, instance=request.url.path)


async def _login_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequired)
    return RedirectResponse(f"/login?{urlencode({'next': exc.path})}", status_code=303)
