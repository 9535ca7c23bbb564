"""Profiles: paged and filtered, counted, uploaded (CSV or JSONL, all rows or none) and removed."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import Field, model_validator
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from ...errors import InputError
from ..actor import ApiUser
from .bodies import Body
from .paging import Limit, Offset, PageOf, jsonable
from .uploads import file_name, format_of, staged, write_stream

router = APIRouter(tags=["profiles"])

UPLOAD_HELP = (
    "The file as the request body (Content-Type text/csv or application/x-ndjson; gzip or not), or a "
    "multipart/form-data upload with the file in the part 'file' (and 'key', 'replace' as fields, if not in the query)."
)


class ProfileRemoval(Body):
    """Which profiles to remove: by key, or those a filter matches (one of the two)."""

    keys: list[str] | None = Field(None, description="Profile keys to remove.")
    where: str | None = Field(None, description="Remove the profiles this filter matches.")

    @model_validator(mode="after")
    def _one_way(self) -> ProfileRemoval:
        if (self.keys is None) == (self.where is None):
            raise ValueError("give either keys or where")
        return self


@router.get("/profiles", summary="List profiles", response_model=PageOf[dict[str, Any]])
def list_profiles(
    ws: ApiUser,
    limit: Limit = 50,
    offset: Offset = 0,
    where: str | None = Query(None, description="Only the profiles this filter matches."),
) -> dict[str, Any]:
    """Return a page of profiles in key order, each as ``{"key", "attributes"}``."""
    page = ws.list_profiles(where=where, limit=limit, offset=offset)
    items = [{"key": key, "attributes": jsonable(attributes)} for key, attributes in page.profiles]
    return {"items": items, "total": page.total, "limit": page.limit, "offset": page.offset}


@router.get("/profiles/count", summary="Count profiles")
def count_profiles(
    ws: ApiUser, where: str | None = Query(None, description="Count only the profiles this filter matches.")
) -> dict[str, Any]:
    """Return how many profiles there are, or match the filter."""
    return {"profiles": ws.count_profiles(where), "where": where}


@router.post(
    "/profiles",
    summary="Upload profiles (CSV or JSONL)",
    openapi_extra={
        "requestBody": {
            "description": UPLOAD_HELP,
            "required": True,
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/x-ndjson": {"schema": {"type": "string"}},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "file": {"type": "string", "format": "binary"},
                            "key": {"type": "string"},
                            "replace": {"type": "boolean"},
                        },
                        "required": ["file"],
                    }
                },
            },
        }
    },
)
async def load_profiles(
    request: Request,
    ws: ApiUser,
    key: str | None = Query(None, description="The column/field holding the profile key (default: the workspace's)."),
    replace: bool = Query(False, description="Replace all profiles: those not in the file are removed."),
    format: str | None = Query(None, description="csv or jsonl (default: from the Content-Type or file name)."),
) -> dict[str, Any]:
    """Add or update profiles by key from one file (all rows or none); with ``replace``, the file is all of them."""
    media = request.headers.get("content-type", "")
    with staged(ws.home) as folder:
        if media.startswith("multipart/form-data"):
            async with request.form() as form:
                upload = form.get("file")
                if not isinstance(upload, UploadFile):
                    raise InputError("the upload has no file: send it in the form part 'file'", param="file")
                path = folder / file_name(upload.filename, "upload")
                with open(path, "wb") as out:
                    while chunk := await upload.read(1 << 20):
                        out.write(chunk)
                fmt = format or format_of(upload.content_type, upload.filename)
                key = key or _text(form.get("key"))
                replace = replace or (_text(form.get("replace")) or "").lower() in ("1", "true", "on", "yes")
        else:
            path = folder / "request body"
            await write_stream(path, request.stream())
            fmt = format or format_of(media)
        if fmt is None:
            raise InputError(
                "say the file's format: Content-Type text/csv or application/x-ndjson, a .csv or .jsonl file name,"
                " or ?format=csv|jsonl",
                param="format",
            )
        loaded = await run_in_threadpool(ws.profiles.load, path=path, key=key, fmt=fmt, replace=replace)
    return dict(jsonable(loaded))


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


@router.delete("/profiles", summary="Remove profiles by key or filter")
def remove_profiles(body: ProfileRemoval, ws: ApiUser) -> dict[str, Any]:
    """Remove profiles by key or by filter; their exports' next runs remove their markers at the platform."""
    return dict(jsonable(ws.remove_profiles(body.keys, where=body.where)))
