"""Who the API is talking to."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ..actor import ApiUser

router = APIRouter(tags=["users"])


@router.get("/me", summary="The authenticated user and their role")
def me(ws: ApiUser) -> dict[str, Any]:
    """Return the user the request authenticated as."""
    user = ws.user
    return {"name": user.name, "role": user.role.value}
