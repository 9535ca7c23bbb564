"""The sandbox kit's former home: every name it had, now defined in :mod:`segport.sandboxing`.

Import from :mod:`segport.sandboxing` in new code; this module stays so that existing sandboxes and
tests keep working.
"""

from __future__ import annotations

from ..sandboxing import (
    FAULT_KINDS,
    JSON_TYPE,
    RETRY_AFTER,
    FaultEvent,
    FaultSettingError,
    Gate,
    HttpError,
    Request,
    Response,
    Router,
    SandboxServer,
    WatchedWrites,
    parse_kinds,
    redirect,
    serve_main,
)

__all__ = [
    "FAULT_KINDS",
    "JSON_TYPE",
    "RETRY_AFTER",
    "FaultEvent",
    "FaultSettingError",
    "Gate",
    "HttpError",
    "Request",
    "Response",
    "Router",
    "SandboxServer",
    "WatchedWrites",
    "parse_kinds",
    "redirect",
    "serve_main",
]
