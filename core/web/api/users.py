"""Users and their roles (admins manage them), invite links, and each user's own API tokens."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import Field

from ..actor import ApiUser
from .bodies import Body
from .paging import Limit, Offset, PageOf, cut, page_of

router = APIRouter(tags=["users"])

RoleName = Literal["admin", "contributor", "viewer"]
WEEK_S = 7 * 86400


class NewUser(Body):
    """A user to add, with their role."""

    name: str = Field(description="The user's name (what they sign in with).")
    role: RoleName = Field(description="admin, contributor or viewer.")


class RoleChange(Body):
    """A user's new role."""

    role: RoleName = Field(description="admin, contributor or viewer.")


class InviteRequest(Body):
    """How long an invite link works."""

    expires_in_seconds: int = Field(
        WEEK_S, ge=60, le=90 * 86400, description="Seconds the link works (default 7 days)."
    )


class NewToken(Body):
    """An API token to create for the acting user."""

    name: str = Field(description="The token's name (to revoke it by).")
    expires_in_seconds: int | None = Field(None, ge=60, description="Seconds it works (default: until revoked).")


@router.get("/users", summary="List users and their roles", response_model=PageOf[dict[str, Any]])
def list_users(
    ws: ApiUser,
    limit: Limit = 50,
    offset: Offset = 0,
    role: Annotated[RoleName | None, Query(description="Only the users with this role.")] = None,
) -> dict[str, Any]:
    """Return a page of users by name, with their roles."""
    return page_of(ws.users_page(limit=limit, offset=offset, role=role))


@router.post("/users", status_code=201, summary="Add a user (admins)")
def add_user(body: NewUser, ws: ApiUser) -> dict[str, Any]:
    """Add a user with a role; they set their password through an invite link."""
    user = ws.add_user(body.name, body.role)
    return user.to_dict()


@router.patch("/users/{name:path}", summary="Change a user's role (admins)")
def set_role(name: str, body: RoleChange, ws: ApiUser) -> dict[str, Any]:
    """Give a user another role (the last admin keeps theirs)."""
    return ws.set_user_role(name, body.role).to_dict()


@router.delete("/users/{name:path}", summary="Remove a user (admins)")
def remove_user(name: str, ws: ApiUser) -> dict[str, Any]:
    """Remove a user: from then on they can do nothing (the last admin cannot go)."""
    user = ws.remove_user(name)
    return {"removed": "user", "name": user.name, "role": user.role.value}


@router.post("/users/{name:path}/invite", summary="Make a one-time invite link (admins)")
def invite_user(name: str, request: Request, ws: ApiUser, body: InviteRequest | None = None) -> dict[str, Any]:
    """Return a one-time link for the user to set their password (their older links stop working)."""
    expires = body.expires_in_seconds if body else WEEK_S
    token = ws.invite_user(name, ttl_seconds=expires)
    base = request.app.state.public_url or str(request.base_url)
    return {"user": name, "url": f"{base.rstrip('/')}/invite/{token}", "expires_in_seconds": expires}


@router.get("/tokens", summary="List API tokens", response_model=PageOf[dict[str, Any]])
def list_tokens(
    ws: ApiUser,
    limit: Limit = 50,
    offset: Offset = 0,
    every_user: bool = Query(False, description="Everyone's tokens (admins only)."),
) -> dict[str, Any]:
    """Return a page of the acting user's API tokens (names and dates; never the tokens)."""
    return cut(ws.list_tokens(every_user=every_user), limit, offset)


@router.post("/tokens", status_code=201, summary="Create an API token")
def create_token(body: NewToken, ws: ApiUser) -> dict[str, Any]:
    """Create an API token for the acting user: the answer holds it, once (it is stored hashed)."""
    token, secret = ws.create_token(body.name, expires_in_seconds=body.expires_in_seconds)
    return {"token": secret, **token.to_dict()}


@router.delete("/tokens/{name:path}", summary="Revoke an API token")
def revoke_token(
    name: str, ws: ApiUser, user: str | None = Query(None, description="Whose token (admins; default: yours).")
) -> dict[str, Any]:
    """Revoke one of the acting user's API tokens (admins: anyone's)."""
    return {"revoked": "token", **ws.revoke_token(name, user=user).to_dict()}
