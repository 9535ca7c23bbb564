"""Pages of the API's lists, and the answers' JSON: one place, so every list pages the same way.

Every list takes ``limit`` (1 to 500, default 50) and ``offset`` (default 0) and answers
``{"items": [...], "total": N, "limit": L, "offset": O}``. The services cut the pages (and count
only what the user may see); :func:`page_of` shapes a service's page, :func:`cut` pages a short
list a service returns whole (a user's API tokens).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Generic, Sequence, TypeVar

from fastapi import Query
from pydantic import BaseModel

from ...services.context import MAX_PAGE

DEFAULT_LIMIT = 50

Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"Items per page (1 to {MAX_PAGE}).")]
Offset = Annotated[int, Query(ge=0, description="Items to skip from the start of the list.")]

T = TypeVar("T")


class PageOf(BaseModel, Generic[T]):
    """One page of a list: ``items`` from ``offset`` (at most ``limit``) of the ``total`` that match."""

    items: list[T]
    total: int
    limit: int
    offset: int


def jsonable(value: Any) -> Any:
    """Return ``value`` as JSON-ready data: models as their ``to_dict()``, non-finite numbers as null."""
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        value = to_dict()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None  # as JavaScript's JSON.stringify writes NaN and infinities
    return value


def page_of(page: Any) -> dict[str, Any]:
    """Return a service's page (``items``, ``total``, ``limit``, ``offset``) as the API's answer."""
    return {
        "items": [jsonable(item) for item in page.items],
        "total": page.total,
        "limit": page.limit,
        "offset": page.offset,
    }


def cut(items: Sequence[Any], limit: int, offset: int) -> dict[str, Any]:
    """Return one page of a whole list a service returned (only for lists that stay short)."""
    return {
        "items": [jsonable(item) for item in items[offset : offset + limit]],
        "total": len(items),
        "limit": limit,
        "offset": offset,
    }
