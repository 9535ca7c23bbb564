"""A thin Campaign Monitor API v3.3 client: ``.json`` routes, timeouts, token refresh, error mapping.

The platform facts it relies on are in docs/providers/campaignmonitor.md (comments point at its
headings). Messages never hold credentials: only Campaign Monitor's own codes and messages and our
hints.
"""

from __future__ import annotations

from typing import Any, Mapping, Protocol, runtime_checkable

import requests

from segport import AuthError, SegportError
from segport.http import ApiClient, ApiError, json_object, one_line

DEFAULT_BASE = "https://api.createsend.com/api/v3.3"
# Authentication codes (docs/providers/campaignmonitor.md#token-refresh):
AUTH_CODES = {50, 100, 102, 120, 122}  # 401s the operator must fix
EXPIRED_TOKEN = 121  # refresh the token, then retry once
INVALID_LIST = 101  # (docs/providers/campaignmonitor.md#invalid-list)
SECRETS = ("api_key", "access_token", "refresh_token", "client_secret")  # masked if an answer quotes them


@runtime_checkable
class Refreshing(Protocol):
    """An auth handler that can refresh an expired OAuth token (see auth.CampaignMonitorAuth)."""

    def token(self) -> str | None:
        """Return the access token requests carry now."""
        ...

    def refresh(self, session: requests.Session, stale: str | None) -> None:
        """Refresh the expired token, unless a token other than ``stale`` is in use already."""
        ...


def error_code(body: Mapping[str, Any]) -> int:
    """CM's numeric ``Code`` (an integer, or text holding one); 0 when missing or anything else."""
    code = body.get("Code")
    if type(code) is int or isinstance(code, str):
        try:
            return int(code)
        except ValueError:
            return 0
    return 0


class CMError(ApiError):
    """A 4xx answer the caller interprets: ``status``, CM's ``code``, ``cm_message``, ``result``."""

    def __init__(self, message: str, *, status: int, call: str, body: Mapping[str, Any], detail: str = "") -> None:
        super().__init__(message, status=status, call=call, body=body, detail=detail)
        self.code = error_code(body)
        self.cm_message = one_line(body.get("Message") or "")
        self.result = body.get("ResultData")


class CampaignMonitorAPI(ApiClient):
    """Calls one account's API through a session that already carries the auth handler.

    Every route ends in ``.json``, which :meth:`call` adds: ``call("GET", "/lists/{list_id}", list_id=x)``.
    """

    platform = "Campaign Monitor"
    path_suffix = ".json"
    auth_hint = (
        "check the API key, or re-run 'segport connections auth NAME' for OAuth; then 'segport connections test NAME'"
    )

    def __init__(self, session: requests.Session, config: Mapping[str, Any]) -> None:
        super().__init__(
            session,
            str(config.get("api_base_url") or DEFAULT_BASE),
            timeout=(10.0, float(config.get("timeout_s", 120))),
            secrets=[config.get(name) for name in SECRETS],
        )

    def send(
        self, method: str, url: str, *, body: bytes | None = None, params: Mapping[str, Any] | None = None
    ) -> requests.Response:
        """One exchange; an expired OAuth token (code 121) is refreshed once and the call sent again."""
        auth = self.session.auth if isinstance(self.session.auth, Refreshing) else None
        used = auth.token() if auth is not None else None
        response = super().send(method, url, body=body, params=params)
        if response.status_code == 401 and auth is not None and error_code(json_object(response)) == EXPIRED_TOKEN:
            auth.refresh(self.session, used)
            response = super().send(method, url, body=body, params=params)
        return response

    def describe(self, body: Mapping[str, Any]) -> str:
        """``code <Code>: <Message>``, as Campaign Monitor's error bodies give them.

        See docs/providers/campaignmonitor.md#error-envelope.
        """
        code, message = error_code(body), one_line(body.get("Message") or "")
        if not code:
            return message
        return f"code {code}: {message}" if message else f"code {code}"

    def error(self, response: requests.Response, call: str) -> SegportError:
        """401 and the credential codes → AuthError, 429/5xx → retryable, other 4xx → :class:`CMError`.

        See docs/providers/campaignmonitor.md#error-envelope.
        """
        status, body = response.status_code, json_object(response)
        if status == 401 or error_code(body) in AUTH_CODES:
            return AuthError(
                f"Campaign Monitor refused the credentials on {call} ({self._refusal(body)}): {self.auth_hint}"
            )
        if 400 <= status < 500 and status != 429:
            detail = self.detail(body)
            error = CMError(self.answered(status, call, detail), status=status, call=call, body=body, detail=detail)
            error.cm_message = self.mask(error.cm_message)  # callers quote it in their own messages
            return error
        return super().error(response, call)

    def _refusal(self, body: Mapping[str, Any]) -> str:
        message = one_line(body.get("Message") or "") or "unauthorized"
        return self.mask(f"code {error_code(body)}: {message}")
