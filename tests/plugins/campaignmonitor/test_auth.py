"""Campaign Monitor credentials: Basic/Bearer headers, the check call, token refresh and the OAuth2 flow.

See docs/providers/campaignmonitor.md#connecting.
"""

from __future__ import annotations

import base64
import threading
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
from responses import matchers

from segport import AuthError
from segport.testing.pytest_plugin import ORDERED
from segport_campaignmonitor import CampaignMonitorDestination
from segport_campaignmonitor.api import CampaignMonitorAPI
from segport_campaignmonitor.auth import CampaignMonitorAuth, CampaignMonitorOAuth

API_KEY = "cm-key-123"
BASE = "https://api.createsend.com/api/v3.3"
CLIENTS_URL = f"{BASE}/clients.json"
TOKEN_URL = "https://api.createsend.com/oauth/token"
KEY_CONFIG = {"api_key": API_KEY, "api_base_url": BASE}
TOKEN = "old-access-token-5c4a7e1f0b2d"
REFRESH = "old-refresh-token-8a9b0c1d2e3f"
NEW_TOKEN = "new-access-token-aa11bb22cc33"
NEW_REFRESH = "new-refresh-token-dd44ee55ff66"
SECRET = "s3cr3t-client-secret-0123456789"
OAUTH_CONFIG = {
    "auth_method": "oauth2",
    "client_id": "98765",
    "client_secret": SECRET,
    "access_token": TOKEN,
    "refresh_token": REFRESH,
    "api_base_url": BASE,
}
REDIRECT = "http://127.0.0.1:53682/callback"
CLIENTS = [
    {"ClientID": "4a397ccaaa55eb4e6aa1221e1e2d7122", "Name": "Acme Corp"},
    {"ClientID": "a206def0582eec7dae47d937a4109cb2", "Name": "Beta Ltd"},
]
EXPIRED = {"Code": 121, "Message": "Expired OAuth Token"}

BASIC = matchers.header_matcher({"Authorization": "Basic " + base64.b64encode(f"{API_KEY}:x".encode()).decode()})


def bearer(token: str) -> Any:
    return matchers.header_matcher({"Authorization": f"Bearer {token}"})


def refresh_form(refresh_token: str = REFRESH) -> Any:
    return matchers.urlencoded_params_matcher({"grant_type": "refresh_token", "refresh_token": refresh_token})


def authed(session: requests.Session, config: dict[str, Any]) -> CampaignMonitorAuth:
    auth = CampaignMonitorAuth(config)
    session.auth = auth
    return auth


def assert_no_secret(text: str) -> None:
    for secret in (API_KEY, TOKEN, REFRESH, NEW_TOKEN, NEW_REFRESH, SECRET):
        assert secret not in text


# -- headers --------------------------------------------------------------------------------------
def test_basic_header_is_the_key_as_username_and_x(rsps: responses.RequestsMock, session: requests.Session) -> None:
    authed(session, KEY_CONFIG)
    rsps.get(CLIENTS_URL, json=[], match=[BASIC])

    session.get(CLIENTS_URL)

    scheme, encoded = rsps.calls[0].request.headers["Authorization"].split(" ")
    assert scheme == "Basic"
    assert base64.b64decode(encoded).decode() == "cm-key-123:x"


def test_bearer_header_for_oauth2(rsps: responses.RequestsMock, session: requests.Session) -> None:
    authed(session, OAUTH_CONFIG)
    rsps.get(CLIENTS_URL, json=[], match=[bearer(TOKEN)])

    session.get(CLIENTS_URL)

    assert rsps.calls[0].request.headers["Authorization"] == f"Bearer {TOKEN}"


def test_oauth2_without_token_is_an_auth_error(rsps: responses.RequestsMock, session: requests.Session) -> None:
    authed(session, {k: v for k, v in OAUTH_CONFIG.items() if k != "access_token"})

    with pytest.raises(AuthError) as caught:  # raised before anything is sent: no response is registered
        session.get(CLIENTS_URL)

    assert "connections auth" in str(caught.value)
    assert_no_secret(str(caught.value))


# -- check() --------------------------------------------------------------------------------------
def test_check_gets_the_clients_and_names_them(rsps: responses.RequestsMock, session: requests.Session) -> None:
    auth = authed(session, KEY_CONFIG)
    rsps.get(CLIENTS_URL, json=CLIENTS, match=[BASIC])

    description = auth.check(session)

    assert "Acme Corp" in description and "Beta Ltd" in description
    assert len(rsps.calls) == 1
    assert rsps.calls[0].request.method == "GET"


def test_check_with_oauth_uses_the_bearer_token(rsps: responses.RequestsMock, session: requests.Session) -> None:
    auth = authed(session, OAUTH_CONFIG)
    rsps.get(CLIENTS_URL, json=CLIENTS[:1], match=[bearer(TOKEN)])

    assert "Acme Corp" in auth.check(session)


def test_check_goes_to_the_configured_base_url(rsps: responses.RequestsMock, session: requests.Session) -> None:
    auth = authed(session, {"api_key": API_KEY, "api_base_url": "http://127.0.0.1:8123/api/v3.3/"})
    rsps.get("http://127.0.0.1:8123/api/v3.3/clients.json", json=CLIENTS, match=[BASIC])

    assert "Acme Corp" in auth.check(session)


@pytest.mark.parametrize(
    ("config", "code", "message", "fix"),
    [
        (KEY_CONFIG, 50, "Must supply a valid HTTP Basic Authorization header", "API key"),
        (KEY_CONFIG, 100, "Invalid API Key", "API key"),
        (KEY_CONFIG, 102, "Invalid ClientID", "API key"),
        (OAUTH_CONFIG, 120, "Invalid OAuth Token", "connections auth"),
        (OAUTH_CONFIG, 122, "Revoked OAuth Token", "connections auth"),
    ],
    ids=["50-no-header", "100-bad-key", "102-client", "120-bad-token", "122-revoked"],
)
def test_check_refused_names_the_fix_without_secrets(
    rsps: responses.RequestsMock,
    session: requests.Session,
    config: dict[str, Any],
    code: int,
    message: str,
    fix: str,
) -> None:
    auth = authed(session, config)
    rsps.get(CLIENTS_URL, status=401, json={"Code": code, "Message": message})

    with pytest.raises(AuthError) as caught:  # no refresh: only 121 means "expired"
        auth.check(session)

    text = str(caught.value)
    assert f"code {code}" in text
    assert fix in text
    assert "connections test" in text
    assert_no_secret(text)
    assert caught.value.internal_message is None or API_KEY not in caught.value.internal_message
    assert auth.updated_secrets() is None


def test_401_without_a_body_is_an_auth_error(rsps: responses.RequestsMock, session: requests.Session) -> None:
    auth = authed(session, KEY_CONFIG)
    rsps.get(CLIENTS_URL, status=401, body="")

    with pytest.raises(AuthError) as caught:
        auth.check(session)
    assert_no_secret(str(caught.value))


# -- refresh on code 121 --------------------------------------------------------------------------
@ORDERED
def test_expired_token_is_refreshed_once_and_the_call_retried(
    rsps: responses.RequestsMock, session: requests.Session
) -> None:
    auth = authed(session, dict(OAUTH_CONFIG))
    rsps.get(CLIENTS_URL, status=401, json=EXPIRED, match=[bearer(TOKEN)])
    rsps.post(
        TOKEN_URL,
        json={"access_token": NEW_TOKEN, "expires_in": 1209600, "refresh_token": NEW_REFRESH},
        match=[refresh_form()],
    )
    rsps.get(CLIENTS_URL, json=CLIENTS, match=[bearer(NEW_TOKEN)])

    description = auth.check(session)

    assert "Acme Corp" in description
    assert len(rsps.calls) == 3
    assert "Authorization" not in rsps.calls[1].request.headers  # the expired token is not sent to /oauth/token
    assert auth.updated_secrets() == {"access_token": NEW_TOKEN, "refresh_token": NEW_REFRESH}
    assert auth.token() == NEW_TOKEN


@ORDERED
def test_refresh_goes_to_the_oauth_base_url(rsps: responses.RequestsMock, session: requests.Session) -> None:
    config = {**OAUTH_CONFIG, "oauth_base_url": "http://127.0.0.1:9000/"}
    auth = authed(session, config)
    api = CampaignMonitorAPI(session, config)
    rsps.get(f"{BASE}/lists/abc.json", status=401, json=EXPIRED, match=[bearer(TOKEN)])
    rsps.post(
        "http://127.0.0.1:9000/oauth/token",
        json={"access_token": NEW_TOKEN, "refresh_token": NEW_REFRESH},
        match=[refresh_form()],
    )
    rsps.get(f"{BASE}/lists/abc.json", json={"ListID": "abc", "Title": "Newsletter"}, match=[bearer(NEW_TOKEN)])

    assert api.call("GET", "/lists/abc") == {"ListID": "abc", "Title": "Newsletter"}
    assert auth.updated_secrets() == {"access_token": NEW_TOKEN, "refresh_token": NEW_REFRESH}


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (400, {"error": "invalid_grant", "error_description": "Specified refresh_token was invalid or expired"}),
        (200, {"error": "invalid_client"}),
        (500, None),
    ],
    ids=["invalid-grant", "no-token", "server-error"],
)
def test_failed_refresh_is_an_auth_error(
    rsps: responses.RequestsMock, session: requests.Session, status: int, body: Any
) -> None:
    auth = authed(session, dict(OAUTH_CONFIG))
    rsps.get(CLIENTS_URL, status=401, json=EXPIRED, match=[bearer(TOKEN)])
    rsps.post(
        TOKEN_URL,
        status=status,
        match=[refresh_form()],
        **({"json": body} if body is not None else {"body": "<html>oops</html>"}),
    )

    with pytest.raises(AuthError) as caught:  # and the call is not retried: no second GET is registered
        auth.check(session)

    assert "connections auth" in str(caught.value)
    assert_no_secret(str(caught.value))
    assert auth.updated_secrets() is None
    assert len(rsps.calls) == 2


def test_token_still_expired_after_refresh_is_an_auth_error(
    rsps: responses.RequestsMock, session: requests.Session
) -> None:
    auth = authed(session, dict(OAUTH_CONFIG))
    rsps.get(CLIENTS_URL, status=401, json=EXPIRED)
    rsps.post(TOKEN_URL, json={"access_token": NEW_TOKEN, "refresh_token": NEW_REFRESH}, match=[refresh_form()])

    with pytest.raises(AuthError):
        auth.check(session)

    assert [c.request.method for c in rsps.calls] == ["GET", "POST", "GET"]  # one refresh, one retry


def test_expired_code_with_an_api_key_cannot_refresh(rsps: responses.RequestsMock, session: requests.Session) -> None:
    auth = authed(session, KEY_CONFIG)
    rsps.get(CLIENTS_URL, status=401, json=EXPIRED)  # no token call is registered

    with pytest.raises(AuthError) as caught:
        auth.check(session)

    assert "connections auth" in str(caught.value)
    assert_no_secret(str(caught.value))


def test_oauth_without_refresh_token_cannot_refresh(rsps: responses.RequestsMock, session: requests.Session) -> None:
    auth = authed(session, {k: v for k, v in OAUTH_CONFIG.items() if k != "refresh_token"})
    rsps.get(CLIENTS_URL, status=401, json=EXPIRED)

    with pytest.raises(AuthError) as caught:
        auth.check(session)
    assert "connections auth" in str(caught.value)


def test_two_refreshes_of_the_same_stale_token_call_the_token_endpoint_once(
    rsps: responses.RequestsMock, session: requests.Session
) -> None:
    auth = authed(session, dict(OAUTH_CONFIG))
    rsps.post(TOKEN_URL, json={"access_token": NEW_TOKEN, "refresh_token": NEW_REFRESH}, match=[refresh_form()])

    auth.refresh(session, TOKEN)
    auth.refresh(session, TOKEN)  # a second batch saw the same 121: the token changed meanwhile

    assert len(rsps.calls) == 1
    assert auth.token() == NEW_TOKEN


def test_concurrent_refreshes_of_one_token_call_the_token_endpoint_once(
    rsps: responses.RequestsMock, session: requests.Session
) -> None:
    auth = authed(session, dict(OAUTH_CONFIG))
    rsps.post(TOKEN_URL, json={"access_token": NEW_TOKEN, "refresh_token": NEW_REFRESH}, match=[refresh_form()])
    start = threading.Barrier(4)
    failures: list[BaseException] = []

    def worker() -> None:
        start.wait()
        try:
            auth.refresh(session, TOKEN)
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert failures == []
    assert len(rsps.calls) == 1
    assert auth.updated_secrets() == {"access_token": NEW_TOKEN, "refresh_token": NEW_REFRESH}


def test_a_second_refresh_of_the_new_token_calls_again(rsps: responses.RequestsMock, session: requests.Session) -> None:
    auth = authed(session, dict(OAUTH_CONFIG))
    rsps.post(TOKEN_URL, json={"access_token": NEW_TOKEN, "refresh_token": NEW_REFRESH}, match=[refresh_form()])
    rsps.post(TOKEN_URL, json={"access_token": "third-token"}, match=[refresh_form(NEW_REFRESH)])

    auth.refresh(session, TOKEN)
    auth.refresh(session, NEW_TOKEN)  # 14 days later the new token expired too

    assert len(rsps.calls) == 2
    assert auth.updated_secrets() == {"access_token": "third-token", "refresh_token": NEW_REFRESH}


# -- OAuth2 web-server flow -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("login", "expected"),
    [(None, "https://api.createsend.com"), ("http://127.0.0.1:9000/", "http://127.0.0.1:9000")],
    ids=["default", "override"],
)
def test_authorize_url(login: str | None, expected: str) -> None:
    config = {**OAUTH_CONFIG, **({"oauth_base_url": login} if login else {})}

    url = CampaignMonitorOAuth().authorize_url(config, REDIRECT, "st4te-xyz")

    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{expected}/oauth"
    assert parse_qs(parts.query, strict_parsing=True) == {
        "type": ["web_server"],
        "client_id": ["98765"],
        "redirect_uri": [REDIRECT],
        "scope": ["ImportSubscribers,ManageLists"],
        "state": ["st4te-xyz"],
    }
    assert_no_secret(url)


@pytest.mark.parametrize(
    ("login", "root"),
    [(None, "https://api.createsend.com"), ("http://127.0.0.1:9000/", "http://127.0.0.1:9000")],
    ids=["default", "override"],
)
def test_exchange_posts_the_form_and_returns_both_tokens(
    rsps: responses.RequestsMock, session: requests.Session, login: str | None, root: str
) -> None:
    config = {k: v for k, v in OAUTH_CONFIG.items() if k not in ("access_token", "refresh_token")}
    if login:
        config["oauth_base_url"] = login
    rsps.post(
        f"{root}/oauth/token",
        json={"access_token": NEW_TOKEN, "expires_in": 1209600, "refresh_token": NEW_REFRESH},
        match=[
            matchers.urlencoded_params_matcher(
                {
                    "grant_type": "authorization_code",
                    "client_id": "98765",
                    "client_secret": SECRET,
                    "redirect_uri": REDIRECT,
                    "code": "c0de",
                }
            )
        ],
    )

    stored = CampaignMonitorOAuth().exchange(session, config, "c0de", REDIRECT)

    assert stored == {"access_token": NEW_TOKEN, "refresh_token": NEW_REFRESH}


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (400, {"error": "invalid_grant", "error_description": f"Specified code was invalid or expired ({SECRET})"}),
        (200, {"error": "invalid_client"}),
        (500, None),
    ],
    ids=["invalid-grant", "no-token", "server-error"],
)
def test_exchange_refused_is_an_auth_error_without_the_secret(
    rsps: responses.RequestsMock, session: requests.Session, status: int, body: Any
) -> None:
    rsps.post(
        TOKEN_URL,
        status=status,
        **({"json": body} if body is not None else {"body": "<html>oops</html>"}),
    )

    with pytest.raises(AuthError) as caught:
        CampaignMonitorOAuth().exchange(session, OAUTH_CONFIG, "c0de", REDIRECT)

    assert SECRET not in str(caught.value)
    assert "client_secret" in str(caught.value)  # names what to check, not its value
    assert "connections auth" in str(caught.value)


def test_destination_offers_oauth_only_for_oauth_configs() -> None:
    assert isinstance(CampaignMonitorDestination().oauth(OAUTH_CONFIG), CampaignMonitorOAuth)
    assert CampaignMonitorDestination().oauth(KEY_CONFIG) is None
    assert isinstance(CampaignMonitorDestination().auth(KEY_CONFIG), CampaignMonitorAuth)
