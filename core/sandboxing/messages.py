"""What a sandbox handler reads and returns: :class:`Request`, :class:`Response`, :class:`HttpError`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping
from urllib.parse import parse_qs, urlencode

__all__ = ["JSON_TYPE", "Drop", "HttpError", "Request", "Response", "parse_query", "redirect"]

JSON_TYPE = "application/json; charset=utf-8"
Drop = Literal["reset", "cut"]


class HttpError(Exception):
    """Answered as ``status`` with a JSON ``body`` by the default :meth:`SandboxServer.render_error`."""

    def __init__(self, status: int, body: Any = None) -> None:
        super().__init__(f"{status}: {body!r}")
        self.status, self.body = status, body


@dataclass
class Request:
    """One parsed HTTP request: ``headers`` have lower-cased names, ``params`` are the route's groups."""

    method: str
    path: str
    query: dict[str, str]
    body: bytes
    headers: Mapping[str, str]
    params: dict[str, str] = field(default_factory=dict)
    bad_json: Callable[[str | None], Exception] = field(default=lambda found: HttpError(400), repr=False)

    def json(self) -> dict[str, Any]:
        """Return the body as a JSON object, ``{}`` when empty; raise ``bad_json(None)`` or ``bad_json(type name)``."""
        if not self.body.strip():
            return {}
        try:
            doc = json.loads(self.body)
        except ValueError:
            raise self.bad_json(None) from None
        if not isinstance(doc, dict):
            raise self.bad_json(type(doc).__name__)
        return doc

    def form(self) -> dict[str, str]:
        """Return the body as a url-encoded form (last value wins)."""
        return parse_query(self.body.decode("utf-8", "replace"))

    def flag(self, name: str) -> bool:
        """Whether query parameter ``name`` is ``true`` or ``1``."""
        return self.query.get(name, "").lower() in ("true", "1")


@dataclass
class Response:
    """A status with a JSON ``body`` (None: empty) or ``raw`` bytes, plus extra headers.

    ``drop`` (set by fault injection): ``reset`` closes the connection with a TCP reset instead of
    answering; ``cut`` sends the headers and half the body, then closes the connection.
    """

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = JSON_TYPE
    raw: bytes | None = None
    drop: Drop | None = None


def redirect(uri: str, params: Mapping[str, str]) -> Response:
    """Return a 302 to ``uri`` with ``params`` added to its query (e.g. an OAuth ``code`` and ``state``)."""
    return Response(302, headers={"Location": uri + ("&" if "?" in uri else "?") + urlencode(params)})


def parse_query(query: str) -> dict[str, str]:
    """Return a url-encoded query or form as a dict (the last value of a repeated name wins)."""
    return {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
