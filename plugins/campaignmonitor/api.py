"""A thin Campaign Monitor API v3.3 client: ``.json`` routes, timeouts, token refresh, error mapping.

The platform facts it relies on are in docs/providers/campaignmonitor.md (comments point at its
headings). Messages never hold credentials: only Campaign Monitor's own codes and messages and our
hints.
"""

from __future__ import annotations

from typing import Any, Mapping, Protocol, runtime_checkable
from urllib.parse import quote

import requests

from segport import AuthError, DestinationError, FatalDestinationError, RetryableDestinationError
from segport.http import json_body, json_object, retry_after

DEFAULT_BASE = "https://api.createsend.com/api/v3.3"
# Authentication codes (docs/providers/campaignmonitor.md#token-refresh):
AUTH_CODES = {50, 100, 102, 120, 122}  # 401s the operator must fix
EXPIRED_TOKEN = 121  # refresh the token, then retry once
INVALID_LIST = 101  # (docs/providers/campaignmonitor.md#invalid-list)


@runtime_checkable
class Refreshing(Protocol):
    """An auth handler that can refresh an expired OAuth token (see auth.CampaignMonitorAuth)."""

    def token(self) -> str | None: ...

    def refresh(self, session: requests.Session, stale: str | None) -> None: ...


def one_line(value: Any) -> str:
    """A value from an answer as one line of text: segport's messages are one line."""
    return " ".join(str(value).split())


def error_code(body: Mapping[str, Any]) -> int:
    """CM's numeric ``Code`` (an integer, or text holding one); 0 when missing or anything else."""
    code = body.get("Code")
    if type(code) is int or isinstance(code, str):
        try:
            return int(code)
        except ValueError:
            return 0
    return 0


class CMError(DestinationError):
    """A 4xx answer the caller interprets: ``status``, CM's ``code``, ``message``, ``result``."""

    def __init__(self, status: int, body: Mapping[str, Any]) -> None:
        self.status = status
        self.code = error_code(body)
        self.cm_message = one_line(body.get("Message") or "")
        self.result = body.get("ResultData")
        super().__init__(f"Campaign Monitor answered {status} (code {self.code}: {self.cm_message})")


def path_key(key: str) -> str:
    """A custom-field key as a path segment (brackets kept, URL-encoded).

    See docs/providers/campaignmonitor.md#custom-fields.
    """
    return quote(key, safe="")


class CampaignMonitorAPI:
    """Calls one account's API through a session that already carries the auth handler."""

    def __init__(self, session: requests.Session, config: Mapping[str, Any]) -> None:
        self.session = session
        self.root = str(config.get("api_base_url") or DEFAULT_BASE).rstrip("/")
        self.timeout = (10.0, float(config.get("timeout_s", 120)))

    def call(self, method: str, path: str, *, json: Any = None, params: Mapping[str, Any] | None = None) -> Any:
        """One request to ``<root><path>.json``; refreshes an expired OAuth token once."""
        auth = self.session.auth if isinstance(self.session.auth, Refreshing) else None
        used = auth.token() if auth is not None else None
        response = self._send(method, path, json, params)
        if response.status_code == 401 and _code(response) == EXPIRED_TOKEN and auth is not None:
            auth.refresh(self.session, used)
            response = self._send(method, path, json, params)
        if response.ok:
            return json_body(response)
        raise error_for(response)

    def _send(self, method: str, path: str, json: Any, params: Mapping[str, Any] | None) -> requests.Response:
        return self.session.request(method, f"{self.root}{path}.json", json=json, params=params, timeout=self.timeout)


def _code(response: requests.Response) -> int:
    return error_code(json_object(response))


def error_for(response: requests.Response) -> DestinationError | AuthError:
    """Map a failed response to segport's errors (docs/providers/campaignmonitor.md#error-envelope)."""
    status = response.status_code
    body = json_object(response)
    code, message = error_code(body), one_line(body.get("Message") or "")
    if status == 401 or code in AUTH_CODES:
        return AuthError(
            f"Campaign Monitor refused the credentials (code {code}: {message or 'unauthorized'}): check the API key, "
            "or re-run 'segport connections auth NAME' for OAuth; then 'segport connections test NAME'"
        )
    if status == 429 or status >= 500:
        return RetryableDestinationError(
            f"Campaign Monitor answered {status} (code {code}: {message})", retry_after=retry_after(response)
        )
    if 400 <= status < 500:
        return CMError(status, body)
    return FatalDestinationError(f"Campaign Monitor answered {status} (code {code}: {message})")
