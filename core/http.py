"""Small HTTP helpers for destination plugins."""

from __future__ import annotations

import math
from typing import Any

import requests

# Failures of the transport, not of the request: the call may be tried again (a reset, a timeout,
# an answer cut in the middle of its body).
TRANSPORT_ERRORS: tuple[type[Exception], ...] = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


def json_body(response: requests.Response) -> Any:
    """The response's JSON document, or None when it has no body or the body is not JSON."""
    if not response.content:
        return None
    try:
        return response.json()
    except (ValueError, RecursionError):  # not JSON, or nested beyond what the parser follows
        return None


def json_object(response: requests.Response) -> dict[str, Any]:
    """The response's JSON object, or ``{}`` for anything else (error bodies vary by platform)."""
    body = json_body(response)
    return body if isinstance(body, dict) else {}


def retry_after(response: requests.Response) -> float | None:
    """Retry-After in seconds; None when absent, an HTTP date, or not a finite, non-negative number."""
    value = response.headers.get("Retry-After")
    try:
        seconds = float(value) if value is not None else math.nan
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None
