"""Small HTTP helpers for destination plugins."""

from __future__ import annotations

from typing import Any

import requests


def json_body(response: requests.Response) -> Any:
    """The response's JSON document, or None when it has no body or the body is not JSON."""
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return None


def json_object(response: requests.Response) -> dict[str, Any]:
    """The response's JSON object, or ``{}`` for anything else (error bodies vary by platform)."""
    body = json_body(response)
    return body if isinstance(body, dict) else {}
