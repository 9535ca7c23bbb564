"""Mailchimp credentials: Basic/Bearer headers, the check call, base URLs and the OAuth2 flow.

See docs/providers/mailchimp.md#connecting.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
from responses import matchers

from segport import AuthError, ConfigError, RunContext
from segport.testing.pytest_plugin import ORDERED
from segport_mailchimp import MailchimpDestination
from segport_mailchimp.api import base_url
from segport_mailchimp.auth import MailchimpAuth, MailchimpOAuth
from segport_mailchimp.writer import MailchimpWriter

API_KEY = "0123456789abcdef0123456789abcdef-us7"
KEY_HEX = API_KEY.split("-")[0]
BASE = "https://us7.api.mailchimp.com/3.0"
TOKEN = "5c4a7e1f0b2d4c6e8a9b0c1d2e3f4a5b"
SECRET = "s3cr3t-client-secret-0123456789"
OAUTH_CONFIG = {
    "auth_method": "oauth2",
    "client_id": "123456789012",
    "client_secret": SECRET,
    "access_token": TOKEN,
    "api_endpoint": "https://us6.api.mailchimp.com",
}
PROBLEM_TYPE = "application/problem+json; charset=utf-8"


def authed(session: requests.Session, config: dict[str, Any]) -> MailchimpAuth:
    auth = MailchimpAuth(config)
    session.auth = auth
    return auth


# -- headers --------------------------------------------------------------------------------------
def test_basic_header_carries_the_key_as_password(rsps: responses.RequestsMock, session: requests.Session) -> None:
    authed(session, {"api_key": API_KEY})
    rsps.get(
        f"{BASE}/ping",
        json={"health_status": "Everything's Chimpy!"},
        match=[matchers.header_matcher({"Authorization": re.compile(r"^Basic \S+$")})],
    )

    session.get(f"{BASE}/ping")

    scheme, encoded = rsps.calls[0].request.headers["Authorization"].split(" ")
    user, _, password = base64.b64decode(encoded).decode().partition(":")
    assert scheme == "Basic"
    assert user  # any username works (docs/providers/mailchimp.md#api-key-authentication)
    assert password == API_KEY


def test_bearer_header_for_oauth(rsps: responses.RequestsMock, session: requests.Session) -> None:
    authed(session, OAUTH_CONFIG)
    rsps.get(
        "https://us6.api.mailchimp.com/3.0/ping",
        json={"health_status": "Everything's Chimpy!"},
        match=[matchers.header_matcher({"Authorization": f"Bearer {TOKEN}"})],
    )

    session.get("https://us6.api.mailchimp.com/3.0/ping")


def test_oauth_without_token_is_an_auth_error(rsps: responses.RequestsMock, session: requests.Session) -> None:
    authed(session, {k: v for k, v in OAUTH_CONFIG.items() if k != "access_token"})

    with pytest.raises(AuthError) as caught:  # raised before anything is sent: no response is registered
        session.get("https://us6.api.mailchimp.com/3.0/ping")

    assert "connections auth" in str(caught.value)
    assert SECRET not in str(caught.value)


# -- check() --------------------------------------------------------------------------------------
@ORDERED
def test_check_pings_then_reads_the_account_name(rsps: responses.RequestsMock, session: requests.Session) -> None:
    auth = authed(session, {"api_key": API_KEY})
    basic = matchers.header_matcher({"Authorization": re.compile(r"^Basic ")})
    rsps.get(f"{BASE}/ping", json={"health_status": "Everything's Chimpy!"}, match=[basic])
    rsps.get(
        f"{BASE}/",
        json={"account_id": "8d3a3db4d97663a9074efcc16", "account_name": "Acme Corp"},
        match=[basic, matchers.query_param_matcher({"fields": "account_name,account_id"})],
    )

    description = auth.check(session)

    assert description.startswith("Acme Corp")
    assert len(rsps.calls) == 2


def test_check_uses_the_oauth_endpoint(rsps: responses.RequestsMock, session: requests.Session) -> None:
    auth = authed(session, OAUTH_CONFIG)
    bearer = matchers.header_matcher({"Authorization": f"Bearer {TOKEN}"})
    rsps.get("https://us6.api.mailchimp.com/3.0/ping", json={"health_status": "Everything's Chimpy!"}, match=[bearer])
    rsps.get("https://us6.api.mailchimp.com/3.0/", json={"account_name": "Acme Corp"}, match=[bearer])

    assert "Acme Corp" in auth.check(session)


@pytest.mark.parametrize(
    "body",
    [
        json.dumps(
            {
                "type": "https://mailchimp.com/developer/marketing/docs/errors/",
                "title": "API Key Invalid",
                "status": 401,
                "detail": "Your API key may be invalid, or you've attempted to access the wrong datacenter.",
                "instance": "",
            }
        ),
        "",
    ],
    ids=["problem", "bodiless"],
)
def test_check_refused_names_the_fix_without_the_key(
    rsps: responses.RequestsMock, session: requests.Session, body: str
) -> None:
    auth = authed(session, {"api_key": API_KEY})
    rsps.get(f"{BASE}/ping", status=401, body=body, content_type=PROBLEM_TYPE)

    with pytest.raises(AuthError) as caught:
        auth.check(session)

    message = str(caught.value)
    assert "API key" in message
    assert "connections test" in message
    assert API_KEY not in message and KEY_HEX not in message
    assert caught.value.internal_message is None or KEY_HEX not in caught.value.internal_message


def test_check_wrong_base_url_is_an_auth_error(rsps: responses.RequestsMock, session: requests.Session) -> None:
    config = {"api_key": API_KEY, "api_base_url": "https://proxy.example/mc"}
    auth = authed(session, config)
    rsps.get(
        "https://proxy.example/mc/3.0/ping",
        status=404,
        content_type=PROBLEM_TYPE,
        body=json.dumps({"title": "Resource Not Found", "status": 404, "detail": "Not found."}),
    )

    with pytest.raises(AuthError) as caught:
        auth.check(session)
    assert "api_base_url" in str(caught.value)


# -- base URL -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"api_key": API_KEY}, BASE),
        ({"api_key": "0123456789abcdef0123456789abcdef-eu1"}, "https://eu1.api.mailchimp.com/3.0"),
        ({"api_key": API_KEY, "api_base_url": "http://127.0.0.1:8080"}, "http://127.0.0.1:8080/3.0"),
        ({"api_key": API_KEY, "api_base_url": "http://127.0.0.1:8080/"}, "http://127.0.0.1:8080/3.0"),
        ({"api_key": API_KEY, "api_base_url": "http://127.0.0.1:8080/3.0"}, "http://127.0.0.1:8080/3.0"),
        ({"api_key": API_KEY, "api_base_url": "https://proxy.example/mc/3.0/"}, "https://proxy.example/mc/3.0"),
        (OAUTH_CONFIG, "https://us6.api.mailchimp.com/3.0"),
        ({**OAUTH_CONFIG, "api_endpoint": "https://us6.api.mailchimp.com/3.0"}, "https://us6.api.mailchimp.com/3.0"),
        ({"api_key": API_KEY, "api_endpoint": "https://us6.api.mailchimp.com"}, BASE),  # not OAuth: ignored
    ],
    ids=[
        "key-dc",
        "key-eu1",
        "override",
        "override-slash",
        "override-3.0",
        "override-path",
        "oauth-endpoint",
        "oauth-endpoint-3.0",
        "endpoint-ignored-for-key",
    ],
)
def test_base_url(config: dict[str, Any], expected: str) -> None:
    assert base_url(config) == expected
    assert MailchimpDestination().base_url(config) == expected


def test_override_is_where_the_calls_go(rsps: responses.RequestsMock, session: requests.Session) -> None:
    auth = authed(session, {"api_key": API_KEY, "api_base_url": "http://127.0.0.1:8080/"})
    rsps.get("http://127.0.0.1:8080/3.0/ping", json={"health_status": "Everything's Chimpy!"})
    rsps.get("http://127.0.0.1:8080/3.0/", json={"account_name": "Sandbox"})

    assert auth.check(session).startswith("Sandbox")


def test_key_without_data_center_is_a_config_error(session: requests.Session) -> None:
    config = {"api_key": KEY_HEX}
    with pytest.raises(ConfigError) as caught:
        base_url(config)
    assert KEY_HEX not in str(caught.value)

    with pytest.raises(ConfigError):  # the writer cannot even be built
        MailchimpWriter(session, config, RunContext("x", {"audience_id": "a1b2c3d4e5"}, [], []))


# -- OAuth2 ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("login", "expected"),
    [(None, "https://login.mailchimp.com"), ("http://127.0.0.1:9000/", "http://127.0.0.1:9000")],
    ids=["default", "override"],
)
def test_authorize_url(login: str | None, expected: str) -> None:
    config = {**OAUTH_CONFIG, **({"oauth_base_url": login} if login else {})}
    url = MailchimpOAuth().authorize_url(config, "http://127.0.0.1:53682/callback", "st4te-xyz")

    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{expected}/oauth2/authorize"
    assert parse_qs(parts.query, strict_parsing=True) == {
        "response_type": ["code"],
        "client_id": ["123456789012"],
        "redirect_uri": ["http://127.0.0.1:53682/callback"],
        "state": ["st4te-xyz"],
    }
    assert SECRET not in url


@ORDERED
@pytest.mark.parametrize(
    ("login", "root"),
    [(None, "https://login.mailchimp.com"), ("http://127.0.0.1:9000/", "http://127.0.0.1:9000")],
    ids=["default", "override"],
)
def test_exchange_posts_the_form_then_reads_the_metadata(
    rsps: responses.RequestsMock, session: requests.Session, login: str | None, root: str
) -> None:
    config = {k: v for k, v in OAUTH_CONFIG.items() if k not in ("access_token", "api_endpoint")}
    if login:
        config["oauth_base_url"] = login
    rsps.post(
        f"{root}/oauth2/token",
        json={"access_token": TOKEN, "expires_in": 0, "scope": None},
        match=[
            matchers.urlencoded_params_matcher(
                {
                    "grant_type": "authorization_code",
                    "client_id": "123456789012",
                    "client_secret": SECRET,
                    "redirect_uri": "http://127.0.0.1:53682/callback",
                    "code": "c0de",
                }
            )
        ],
    )
    rsps.get(
        f"{root}/oauth2/metadata",
        json={
            "dc": "us6",
            "role": "owner",
            "accountname": "Acme Corp",
            "user_id": 42,
            "login_url": "https://login.mailchimp.com",
            "api_endpoint": "https://us6.api.mailchimp.com",
        },
        match=[matchers.header_matcher({"Authorization": f"OAuth {TOKEN}"})],
    )

    stored = MailchimpOAuth().exchange(session, config, "c0de", "http://127.0.0.1:53682/callback")

    assert stored == {"access_token": TOKEN, "api_endpoint": "https://us6.api.mailchimp.com"}
    assert base_url({**config, **stored}) == "https://us6.api.mailchimp.com/3.0"


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (400, {"error": "invalid_grant", "error_description": f"bad code for client_secret {SECRET}"}),
        (200, {"error": "invalid_client"}),
        (500, None),
    ],
    ids=["invalid-grant", "no-token", "server-error"],
)
def test_exchange_refused_is_an_auth_error_without_the_secret(
    rsps: responses.RequestsMock, session: requests.Session, status: int, body: Any
) -> None:
    rsps.post(
        "https://login.mailchimp.com/oauth2/token",
        status=status,
        **({"json": body} if body is not None else {"body": "<html>oops</html>"}),
    )

    with pytest.raises(AuthError) as caught:
        MailchimpOAuth().exchange(session, OAUTH_CONFIG, "c0de", "http://127.0.0.1:53682/callback")

    assert SECRET not in str(caught.value)
    assert "client_secret" in str(caught.value)  # names what to check, not its value
    if body:
        assert body["error"] in str(caught.value)


def test_exchange_metadata_refused_is_an_auth_error(rsps: responses.RequestsMock, session: requests.Session) -> None:
    rsps.post("https://login.mailchimp.com/oauth2/token", json={"access_token": TOKEN, "expires_in": 0})
    rsps.get(
        "https://login.mailchimp.com/oauth2/metadata",
        status=401,
        json={"error": "invalid_token", "error_description": "token revoked"},
    )

    with pytest.raises(AuthError) as caught:
        MailchimpOAuth().exchange(session, OAUTH_CONFIG, "c0de", "http://127.0.0.1:53682/callback")
    assert TOKEN not in str(caught.value) and SECRET not in str(caught.value)


def test_destination_offers_oauth_only_for_oauth_configs() -> None:
    assert isinstance(MailchimpDestination().oauth(OAUTH_CONFIG), MailchimpOAuth)
    assert MailchimpDestination().oauth({"api_key": API_KEY}) is None
