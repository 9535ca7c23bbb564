"""Mailchimp credentials: Basic auth with an API key, or an OAuth2 bearer token.

See docs/providers/mailchimp.md#api-key-authentication and docs/providers/mailchimp.md#oauth2-authorization-code.
"""

from __future__ import annotations

import base64
from typing import Any, Mapping
from urllib.parse import urlencode

import requests

from segport import AuthError, AuthHandler, OAuth2Flow
from segport.http import TRANSPORT_ERRORS, authorization_code_form, json_object, unreachable

from .api import MailchimpAPI, Problem


class MailchimpAuth(AuthHandler):
    """``Authorization: Basic`` with the key as password, or ``Bearer`` with an OAuth token."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        """Sign ``request`` with the key (Basic) or the OAuth token (Bearer)."""
        request.headers["Authorization"] = self._header()
        return request

    def _header(self) -> str:
        if self.config.get("auth_method") == "oauth2":
            token = self.config.get("access_token")
            if not token:
                raise AuthError("this Mailchimp connection has no OAuth token yet: run 'segport connections auth NAME'")
            return f"Bearer {token}"
        # Any username works; the key is the password (docs/providers/mailchimp.md#api-key-authentication).
        pair = f"segport:{self.config['api_key']}".encode()
        return "Basic " + base64.b64encode(pair).decode()

    def check(self, session: requests.Session) -> str:
        """``GET /ping`` validates the credentials; ``GET /`` names the account.

        See docs/providers/mailchimp.md#ping-and-api-root.
        """
        api = MailchimpAPI(session, self.config)
        try:
            api.call("GET", "/ping")
            account = api.call("GET", "/", params={"fields": "account_name,account_id"}) or {}
        except Problem as exc:  # names the call, e.g. "Mailchimp answered 404 Resource Not Found on GET /ping: ..."
            raise AuthError(f"Mailchimp did not accept the credentials check: {exc}; check api_base_url") from None
        return f"{account.get('account_name', 'Mailchimp account')} ({api.base_url})"


class MailchimpOAuth(OAuth2Flow):
    """The authorization-code flow; tokens do not expire, so no refresh exists.

    See docs/providers/mailchimp.md#token-lifetime.
    """

    def authorize_url(self, config: Mapping[str, Any], redirect_uri: str, state: str) -> str:
        """Return the authorization URL on the login host, with ``state``."""
        query = urlencode(
            {"response_type": "code", "client_id": config["client_id"], "redirect_uri": redirect_uri, "state": state}
        )
        return f"{_login(config)}/oauth2/authorize?{query}"

    def exchange(
        self, session: requests.Session, config: Mapping[str, Any], code: str, redirect_uri: str
    ) -> dict[str, Any]:
        """Trade the code for a token, then read the metadata endpoint for the API endpoint.

        See docs/providers/mailchimp.md#oauth-metadata.
        """
        form = authorization_code_form(config, code, redirect_uri)
        url = f"{_login(config)}/oauth2/token"
        try:
            token = session.post(url, data=form, timeout=30)
        except TRANSPORT_ERRORS as exc:
            raise unreachable(exc, "Mailchimp's login server", "POST /oauth2/token", url) from exc
        body = json_object(token)
        if not token.ok or "access_token" not in body:
            raise AuthError(
                f"Mailchimp refused the authorization code on POST /oauth2/token "
                f"({body.get('error', token.status_code)}): check client_id/client_secret and the app's "
                "redirect URI, then run 'connections auth' again"
            )
        access = str(body["access_token"])
        url = f"{_login(config)}/oauth2/metadata"
        try:
            meta = session.get(url, headers={"Authorization": f"OAuth {access}"}, timeout=30)
        except TRANSPORT_ERRORS as exc:
            raise unreachable(exc, "Mailchimp's login server", "GET /oauth2/metadata", url) from exc
        info = json_object(meta)
        if not meta.ok or "api_endpoint" not in info:
            raise AuthError(
                f"Mailchimp's OAuth metadata endpoint (GET /oauth2/metadata) refused the new token "
                f"({meta.status_code}): run 'connections auth' again"
            )
        return {"access_token": access, "api_endpoint": str(info["api_endpoint"])}


def _login(config: Mapping[str, Any]) -> str:
    return str(config.get("oauth_base_url") or "https://login.mailchimp.com").rstrip("/")
