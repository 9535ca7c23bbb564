"""The installed destination plugins: what each needs to connect and export (``segport plugins``)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter

from ...config import secret_fields
from ...contract import lists_audiences
from ...errors import NotFound
from ..actor import ApiUser

router = APIRouter(tags=["plugins"])


@router.get("/plugins", summary="List the destination plugins")
def list_plugins(ws: ApiUser) -> list[dict[str, Any]]:
    """Return every destination plugin, loadable or broken (with the reason), by name."""
    ws.require("plugins.list")
    return [info.to_dict() for info in ws.registry.infos()]


@router.get("/plugins/{type}", summary="Show a destination plugin")
def show_plugin(type: str, ws: ApiUser) -> dict[str, Any]:
    """Return a destination's display name, schemas (secret fields marked), fields, limits and abilities."""
    ws.require("plugins.list")
    installed = {info.name for info in ws.registry.infos()}
    if type not in installed:
        known = ", ".join(sorted(installed)) or "none installed"
        raise NotFound(f"unknown destination type {type!r} (available: {known})", param="type")
    destination = ws.registry.get(type)
    spec = destination.spec()
    return {
        "name": destination.name,
        "title": destination.title,
        "auth_methods": list(spec.auth_methods),
        "supports_oauth": "oauth2" in spec.auth_methods,
        "lists_audiences": lists_audiences(destination),
        "secret_fields": sorted(secret_fields(spec.connection_schema)),
        "limits": asdict(spec.limits),
        "fields": {"email": "required", **dict(spec.fields.known), "other": spec.fields.allow_other},
        "connection_schema": spec.connection_schema,
        "export_schema": spec.export_schema,
        "documentation_url": spec.documentation_url,
    }
