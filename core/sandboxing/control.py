"""The test API every sandbox serves, unauthenticated, under ``/_sandbox/``.

Its calls: state, summary, faults, refuse, revoke, rotate, reset.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .faults import FAULT_SETTINGS, FaultSettingError
from .messages import Request, Response
from .routing import Router

if TYPE_CHECKING:
    from .server import SandboxServer

__all__ = ["CONTROL", "CONTROL_PREFIX"]

CONTROL_PREFIX = "/_sandbox/"
CONTROL: Router[SandboxServer] = Router()
CONTROL.route("GET", CONTROL_PREFIX + "state")(lambda sb, req: Response(200, sb.state()))
CONTROL.route("GET", CONTROL_PREFIX + "summary")(lambda sb, req: Response(200, sb.summary()))


@CONTROL.route("POST", CONTROL_PREFIX + "faults")
def _faults(sb: SandboxServer, req: Request) -> Response:
    """Change fault settings (those named in the body); answer the three classic ones (GET shows all)."""
    body = req.json()
    settings = {name: body.get(name) for name in (*FAULT_SETTINGS, "keep")}
    try:
        sb.set_faults(**{k: v for k, v in settings.items() if k != "keep"}, keep=bool(settings["keep"]))
    except FaultSettingError as err:
        raise sb.invalid_input(err.name, str(err)) from None
    except (ValueError, TypeError) as err:
        raise sb.invalid_input("kinds", str(err)) from None
    return Response(200, {"fail_rate": sb.fail_rate, "latency_ms": sb.latency_ms, "status_codes": [*sb.status_codes]})


@CONTROL.route("GET", CONTROL_PREFIX + "faults")
def _fault_report(sb: SandboxServer, req: Request) -> Response:
    """Every fault setting, the count of injected faults per kind, and the log (kind, method, path, operation)."""
    return Response(200, sb.fault_report())


@CONTROL.route("POST", CONTROL_PREFIX + "(?P<action>revoke|reset)")
def _revoke_or_reset(sb: SandboxServer, req: Request) -> Response:
    sb.revoke_key() if req.params["action"] == "revoke" else sb.reset()
    return Response(204)


@CONTROL.route("POST", CONTROL_PREFIX + "rotate")
def _rotate(sb: SandboxServer, req: Request) -> Response:
    """Issue a new API key of the same account and refuse the old one (:meth:`rotate_key`); answer the new key."""
    return Response(200, {"api_key": sb.rotate_key()})


@CONTROL.route("POST", CONTROL_PREFIX + "refuse")
def _refuse(sb: SandboxServer, req: Request) -> Response:
    """``{"email": ...}``: batch calls refuse that address from now on, as a per-member error (:meth:`refuse`)."""
    email = req.json().get("email")
    if not isinstance(email, str) or "@" not in email:
        raise sb.invalid_input("email", "give the address to refuse as a string")
    sb.refuse(email)
    return Response(204)
