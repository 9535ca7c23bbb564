"""Segments: named sets of profiles, defined by a filter (with a live count of matches) or by keys."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from pydantic import Field

from ..actor import ApiUser
from .bodies import Body
from .paging import Limit, Offset, PageOf, jsonable, page_of
from .uploads import staged, write_keys

router = APIRouter(tags=["segments"])


class SegmentFilter(Body):
    """A segment defined by a filter over profile attributes."""

    name: str = Field(description="The segment's name.")
    where: str = Field(description="The filter, e.g. \"plan = 'pro' and country in ('FR', 'DE')\".")


class SegmentMembers(Body):
    """The profile keys a static segment holds (replacing its members)."""

    keys: list[str] = Field(description="Profile keys; keys that name no profile are counted, not kept.")


@router.get("/segments", summary="List segments with their member counts", response_model=PageOf[dict[str, Any]])
def list_segments(
    ws: ApiUser,
    limit: Limit = 50,
    offset: Offset = 0,
    search: str | None = Query(None, description="Only those whose name holds this (any case)."),
) -> dict[str, Any]:
    """Return a page of segments by name, each with its current member count."""
    return page_of(ws.segments_page(limit=limit, offset=offset, search=search))


@router.post("/segments", status_code=201, summary="Define a segment by a filter")
def define_segment(body: SegmentFilter, ws: ApiUser) -> dict[str, Any]:
    """Create or update a segment defined by a filter; names no profile has come back with the closest ones."""
    segment = ws.define_segment(body.name, body.where)
    return {
        **segment.to_dict(),
        "members": ws.count_profiles(segment.expression),
        "unknown_attributes": ws.unknown_attributes(body.where),
    }


@router.get("/segments/count", summary="Count the profiles a filter matches")
def count_matches(
    ws: ApiUser, where: str = Query(description="The filter, as a segment's definition takes it.")
) -> dict[str, Any]:
    """Return how many profiles match the filter now (a segment's definition, before saving it)."""
    return {"where": where, "count": ws.count_profiles(where), "unknown_attributes": ws.unknown_attributes(where)}


@router.put("/segments/{name:path}/members", summary="Set a static segment's members")
def set_members(name: str, body: SegmentMembers, ws: ApiUser) -> dict[str, Any]:
    """Create or replace a static segment holding the profiles of these keys."""
    with staged(ws.home) as folder:
        path = folder / "keys.jsonl"
        write_keys(path, body.keys)
        loaded = ws.load_segment(name, path, key="id", fmt="jsonl")
    return dict(jsonable(loaded))


@router.delete("/segments/{name:path}", summary="Remove a segment")
def remove_segment(name: str, ws: ApiUser) -> dict[str, Any]:
    """Remove a segment no export uses."""
    ws.remove_segment(name)
    return {"removed": "segment", "name": name}
