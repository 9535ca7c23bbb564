"""``fields`` and ``exclude_fields``: the query parameters that trim a Mailchimp GET answer.

Both are comma-separated lists of field paths in dot notation (``members.email_address``); a path
through an array applies to each of its items. ``fields`` keeps only the fields named, ``exclude_fields``
drops them; names matching nothing are ignored. See docs/providers/mailchimp.md#pagination.
"""

from __future__ import annotations

from typing import Any, Mapping

from segport.sandboxing import Response

__all__ = ["trim", "trim_response"]

Path = list[str]


def _paths(spec: str) -> list[Path]:
    return [part.strip().split(".") for part in spec.split(",") if part.strip()]


def _keep(value: Any, paths: list[Path]) -> Any:
    if isinstance(value, list):
        return [_keep(item, paths) for item in value]
    if not isinstance(value, dict):
        return value
    kept = {}
    for key, item in value.items():
        rests = [path[1:] for path in paths if path[0] == key]
        if rests:
            kept[key] = item if any(not rest for rest in rests) else _keep(item, rests)
    return kept


def _drop(value: Any, paths: list[Path]) -> Any:
    if isinstance(value, list):
        return [_drop(item, paths) for item in value]
    if not isinstance(value, dict):
        return value
    kept = {}
    for key, item in value.items():
        rests = [path[1:] for path in paths if path[0] == key]
        if not any(not rest for rest in rests):
            kept[key] = _drop(item, rests) if rests else item
    return kept


def trim(body: Any, fields: str | None, exclude_fields: str | None) -> Any:
    """Return ``body`` with only the ``fields`` paths (when given), then without the ``exclude_fields`` paths."""
    if fields:
        body = _keep(body, _paths(fields))
    if exclude_fields:
        body = _drop(body, _paths(exclude_fields))
    return body


def trim_response(resp: Response, query: Mapping[str, str]) -> Response:
    """Trim a successful JSON answer as its request's ``fields``/``exclude_fields`` ask; errors stay whole."""
    if resp.status == 200 and isinstance(resp.body, dict) and ("fields" in query or "exclude_fields" in query):
        resp.body = trim(resp.body, query.get("fields"), query.get("exclude_fields"))
    return resp
