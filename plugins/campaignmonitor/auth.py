"""Campaign Monitor credentials: Basic with the API key as username, or OAuth2 with refresh.

See docs/providers/campaignmonitor.md#api-key-authentication and
docs/providers/campaignmonitor.md#oauth2-web-server-flow.
"""

from __future__ import annotations

import base64
import threading
from typing import Any, Callable, Mapping
from urllib.parse import urlencode

import requests

from segport import AuthError, AuthHandler, OAuth2Flow
from segport.http import TRANSPORT_ERRORS, authorization_code_form, unreachable

from .api import CampaignMonitorAPI, CMError

# Import, plus custom fields and segments (docs/providers/campaignmonitor.md#oauth2-web-server-flow).
SCOPES = "ImportSubscribers,ManageLists"


class CampaignMonitorAuth(AuthHandler):
    """``Basic <key>:x`` or ``Bearer <token>``; refreshes an expired token (code 121) on request."""

    config: dict[str, Any]  # a private copy: a refresh replaces its tokens

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(dict(config))
        self._changed: dict[str, Any] = {}
        self._lock = threading.Lock()  # batches run in parallel: one refresh for all of them

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        """Sign ``request`` with the key (Basic) or the OAuth token (Bearer)."""
        if self.config.get("auth_method") == "oauth2":
            token = self.config.get("access_token")
            if not token:
                raise AuthError(
                    "this Campaign Monitor connection has no OAuth token yet: run 'segport connections auth NAME'"
                )
            request.headers["Authorization"] = f"Bearer {token}"
        else:  # key as username, password ignored (docs/providers/campaignmonitor.md#api-key-authentication)
            pair = f"{self.config['api_key']}:x".encode()
            request.headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        return request

    def check(self, session: requests.Session) -> str:
        """``GET /clients.json`` is a cheap authenticated call that names the account's clients."""
        try:
            clients = CampaignMonitorAPI(session, self.config).call("GET", "/clients") or []
        except CMError as exc:  # names the call: "Campaign Monitor answered 404 on GET /clients.json (...)"
            raise AuthError(
                f"Campaign Monitor did not accept the credentials check: {exc}; check the API key and api_base_url"
            ) from None
        names = ", ".join(str(c.get("Name")) for c in clients if isinstance(c, dict)) or "a client-level key"
        return f"Campaign Monitor account with clients: {names}"

    def token(self) -> str | None:
        """Return the access token requests carry now."""
        token = self.config.get("access_token")
        return str(token) if token else None

    def refresh(self, session: requests.Session, stale: str | None) -> None:
        """Trade the refresh token for a new pair (14-day tokens) unless ``stale`` was refreshed already.

        See docs/providers/campaignmonitor.md#token-refresh.
        """
        with self._lock:
            if self.token() != stale:
                return  # another batch refreshed it meanwhile
            if self.config.get("auth_method") != "oauth2" or not self.config.get("refresh_token"):
                raise AuthError(
                    "the Campaign Monitor OAuth token expired and cannot be refreshed: "
                    "run 'segport connections auth NAME'"
                )
            form = {"grant_type": "refresh_token", "refresh_token": self.config["refresh_token"]}
            # a plain request: the session would attach the expired bearer token
            tokens = _tokens(_post_token(requests.post, _login(self.config), form))
            if tokens is None:
                raise AuthError(
                    "refreshing the Campaign Monitor OAuth token failed on POST /oauth/token: "
                    "run 'segport connections auth NAME'"
                )
            self.config.update(tokens)
            self._changed.update(tokens)

    def updated_secrets(self) -> Mapping[str, Any] | None:
        """Return the tokens a refresh changed, for the workspace to store; None when nothing changed."""
        return dict(self._changed) or None


class CampaignMonitorOAuth(OAuth2Flow):
    """The web-server flow: authorize, then trade the code for access and refresh tokens.

    See docs/providers/campaignmonitor.md#oauth2-web-server-flow.
    """

    def authorize_url(self, config: Mapping[str, Any], redirect_uri: str, state: str) -> str:
        """Return the web-server flow's authorization URL on the login host, scopes and ``state`` included."""
        query = urlencode(
            {
                "type": "web_server",
                "client_id": config["client_id"],
                "redirect_uri": redirect_uri,
                "scope": SCOPES,
                "state": state,
            }
        )
        return f"{_login(config)}/oauth?{query}"

    def exchange(
        self, session: requests.Session, config: Mapping[str, Any], code: str, redirect_uri: str
    ) -> dict[str, Any]:
        """Trade the code for access and refresh tokens; a refusal is an :class:`AuthError` saying what to check."""
        form = authorization_code_form(config, code, redirect_uri)
        tokens = _tokens(_post_token(session.post, _login(config), form))
        if tokens is None:
            raise AuthError(
                "Campaign Monitor refused the authorization code on POST /oauth/token: check client_id/client_secret "
                "and the app's redirect URI, then run 'segport connections auth NAME' again"
            )
        return tokens


def _post_token(post: Callable[..., requests.Response], login: str, form: Mapping[str, str]) -> requests.Response:
    """``POST /oauth/token`` on the login host; a transport failure names the host and the call."""
    url = f"{login}/oauth/token"
    try:
        return post(url, data=form, timeout=30)
    except TRANSPORT_ERRORS as exc:
        raise unreachable(exc, "Campaign Monitor's login server", "POST /oauth/token", url) from exc


def _login(config: Mapping[str, Any]) -> str:
    return str(config.get("oauth_base_url") or "https://api.createsend.com").rstrip("/")


def _tokens(response: requests.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    if not response.ok or not isinstance(body, dict) or "access_token" not in body:
        return None
    tokens = {"access_token": str(body["access_token"])}
    if body.get("refresh_token"):
        tokens["refresh_token"] = str(body["refresh_token"])
    return tokens
