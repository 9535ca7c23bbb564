"""Errors over HTTP: RFC 9457 problem documents carrying segport's exit-status name.

Every :class:`~segport.SegportError` the services raise becomes one problem document with the HTTP
status its :class:`~segport.ExitStatus` maps to (:data:`HTTP_STATUS`), the operator's one line as
``detail``, and the exit status by name (``code``) and number (``exit_status``), as the CLI's
``--json`` failures carry them.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from ..errors import AlreadyExists, ExitStatus, NotFound, SegportError, TooManyAttempts, Unauthenticated

PROBLEM_JSON = "application/problem+json"

HTTP_STATUS: dict[ExitStatus, int] = {
    ExitStatus.ERROR: 500,
    ExitStatus.USAGE: 400,
    ExitStatus.CONFIG_ERROR: 422,
    ExitStatus.INPUT_ERROR: 422,
    ExitStatus.NOT_FOUND: 404,
    ExitStatus.PERMISSION_DENIED: 403,
    ExitStatus.PLUGIN_ERROR: 500,
    ExitStatus.AUTH_ERROR: 502,  # the platform refused the stored credentials: an upstream failure
    ExitStatus.DESTINATION_ERROR: 502,
    ExitStatus.RUN_FAILED: 409,  # the run cannot start as things are (the export is disabled, ...)
    ExitStatus.ALREADY_RUNNING: 409,
    ExitStatus.WORKSPACE_ERROR: 503,
    ExitStatus.CAP_EXCEEDED: 422,
    ExitStatus.EXECUTOR_ERROR: 503,
    ExitStatus.UNREACHABLE: 504,
}


def http_status(exc: SegportError) -> int:
    """Return the HTTP status of a service error (401 and 429 for the identity errors, 409 for a name taken)."""
    if isinstance(exc, Unauthenticated):
        return 401
    if isinstance(exc, TooManyAttempts):
        return 429
    if isinstance(exc, AlreadyExists):
        return 409
    return HTTP_STATUS.get(exc.exit_status, 500)


def problem(
    status: int,
    detail: str,
    *,
    code: ExitStatus,
    instance: str | None = None,
    **extra: Any,
) -> JSONResponse:
    """Return one problem document (``type`` is ``about:blank``: the HTTP status's title says what it is)."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code.name,
        "exit_status": int(code),
    }
    if instance:
        body["instance"] = instance
    body.update({k: v for k, v in extra.items() if v is not None})
    headers = {"WWW-Authenticate": 'Bearer realm="segport"'} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def error_problem(request: Request, exc: SegportError) -> JSONResponse:
    """Return the problem document of a service error: its line, its param and its suggestions."""
    suggestions = exc.suggestions if isinstance(exc, NotFound) else None
    return problem(
        http_status(exc),
        exc.message,
        code=exc.exit_status,
        instance=request.url.path,
        param=exc.param,
        suggestions=suggestions or None,
        **(exc.details or {}),
    )
