"""Connections: destination accounts, their credentials (never shown again) and who may use them."""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Response
from pydantic import Field

from ...config import redact
from ...errors import ConfigError
from ...models import Connection
from ...workspace import Workspace
from ..actor import ApiUser
from .bodies import Body
from .paging import Limit, Offset, PageOf, jsonable, page_of

router = APIRouter(tags=["connections"])

ShareName = Literal["admins", "contributors"]


class NewConnection(Body):
    """A connection to add: the plugin's config (secrets included), who may use it, and the consent."""

    name: str = Field(description="The connection's display name.")
    type: str = Field(description="The destination plugin (see GET /api/v1/plugins).")
    config: dict[str, Any] = Field(default_factory=dict, description="Settings per the plugin's connection schema.")
    share: ShareName = Field("admins", description="Who may use it: admins only, or contributors too.")
    agree_privacy: bool = Field(False, description="Agreement to the data-privacy notice (required).")
    check: bool = Field(True, description="Check the credentials with the platform before saving.")
    profile_cap: int | None = Field(None, ge=1, description="The most profiles one export may select.")


class ConnectionChanges(Body):
    """Changes to a connection, as ``segport connections edit`` makes them."""

    rename: str | None = Field(None, description="A new name; its exports follow and keep their sync state.")
    share: ShareName | None = Field(None, description="Who may use it.")
    config: dict[str, Any] | None = Field(
        None, description="Settings merged into the stored ones (null removes an optional one; new secrets too)."
    )
    profile_cap: int | None = Field(None, ge=1, description="The most profiles one export may select.")
    check: bool = Field(True, description="Check changed credentials with the platform.")
    force: bool = Field(False, description="Accept credentials of another account (its exports then resend all).")


def shown(ws: Workspace, connection: Connection) -> dict[str, Any]:
    """Return a connection as ``connections show --json`` does: secrets never, their names only."""
    data = connection.to_dict()
    data["config"] = redact(connection.config, ws.registry.get(connection.type).spec().connection_schema)
    data["secrets"] = ws.stored_secret_names(connection.name)
    return data


@router.get("/connections", summary="List connections", response_model=PageOf[dict[str, Any]])
def list_connections(ws: ApiUser, limit: Limit = 50, offset: Offset = 0) -> dict[str, Any]:
    """Return a page of connections: every one for admins; the shared ones' name and type for others."""
    return page_of(ws.connections_page(limit=limit, offset=offset))


@router.post("/connections", status_code=201, summary="Add a connection (admins)")
def add_connection(body: NewConnection, ws: ApiUser, response: Response) -> dict[str, Any]:
    """Add a connection after the privacy consent, validation and a credential check."""
    connection = ws.add_connection(
        body.name,
        body.type,
        body.config,
        share=body.share,
        agree_privacy=body.agree_privacy,
        check=body.check,
        profile_cap=body.profile_cap,
    )
    response.headers["Location"] = f"/api/v1/connections/{quote(connection.name, safe='')}"
    return shown(ws, connection)


@router.post("/connections/{name:path}/test", summary="Test a connection's credentials")
def test_connection(name: str, ws: ApiUser) -> dict[str, Any]:
    """Check the stored credentials with the platform; answer the account they reach."""
    return ws.test_connection(name).to_dict()


@router.get("/connections/{name:path}/audiences", summary="List the audiences a connection can write to")
def list_audiences(name: str, ws: ApiUser) -> list[dict[str, Any]]:
    """Return the audiences (lists) the platform lists for the connection, with their ids."""
    return [jsonable(audience) for audience in ws.list_audiences(name)]


@router.get("/connections/{name:path}", summary="Show a connection (admins)")
def show_connection(name: str, ws: ApiUser) -> dict[str, Any]:
    """Return a connection: its settings with secrets hidden, and the names of the secrets it stores."""
    return shown(ws, ws.get_connection(name))


@router.patch("/connections/{name:path}", summary="Change a connection (admins)")
def edit_connection(name: str, body: ConnectionChanges, ws: ApiUser) -> dict[str, Any]:
    """Rotate credentials, share, rename or change settings in place; its exports keep their sync state."""
    asked = body.model_fields_set - {"check", "force"}
    if not asked:
        raise ConfigError("nothing to change: give rename, share, config or profile_cap", param="body")
    outcome: dict[str, Any] = {"changes": {}, "account": None, "notes": []}
    if asked - {"profile_cap"}:
        edited = ws.edit_connection(
            name, rename=body.rename, share=body.share, config=body.config, check=body.check, force=body.force
        )
        outcome = {"changes": edited.changes, "account": edited.account, "notes": list(edited.notes)}
        name = edited.connection.name
    if "profile_cap" in asked:
        before = ws.get_connection(name).profile_cap
        ws.set_profile_cap(name, body.profile_cap)
        if before != body.profile_cap:
            outcome["changes"] = {**outcome["changes"], "profile_cap": {"old": before, "new": body.profile_cap}}
    return {**shown(ws, ws.get_connection(name)), **jsonable(outcome)}


@router.delete("/connections/{name:path}", summary="Remove a connection (admins)")
def remove_connection(name: str, ws: ApiUser) -> dict[str, Any]:
    """Erase a connection and its secrets; its exports stay, detached and disabled."""
    detached = ws.remove_connection(name)
    return {"removed": "connection", "name": name, "detached_exports": detached}
