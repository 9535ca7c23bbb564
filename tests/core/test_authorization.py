"""A connection's OAuth2 authorization in two steps (begin, complete), as the web console runs it.

The browser is played by ``requests`` against the sandboxes' authorize pages; the redirect is read
from their ``Location`` header instead of being followed to a server.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import parse_qs, parse_qsl, urlsplit

import pytest
import requests

from segport import AuthError, ConfigError, PermissionDenied, Registry, Workspace
from segport.plugins import make_manager
from segport.services import authorization
from segport.testing import dump_database
from segport_campaignmonitor import CampaignMonitorDestination
from segport_campaignmonitor.sandbox import CampaignMonitorSandbox
from segport_mailchimp import MailchimpDestination
from segport_mailchimp.sandbox import MailchimpSandbox

CALLBACK = "http://127.0.0.1:8400/oauth/callback"
SECRET = "app-secret-4f1d2c"


@pytest.fixture
def mailchimp() -> Iterator[MailchimpSandbox]:
    with MailchimpSandbox(seed=31) as server:
        yield server


@pytest.fixture
def ws(tmp_path: Path, mailchimp: MailchimpSandbox, database_url: str | None) -> Iterator[Workspace]:
    """Admin ada (and admin grace, contributor carl); connection 'mc' created for OAuth, not yet authorized."""
    registry = Registry.from_plugins([MailchimpDestination, CampaignMonitorDestination])
    workspace = Workspace.create(
        tmp_path / "ws", "ada", database_url=database_url, registry=registry, pm=make_manager(autoload=False)
    )
    workspace.add_user("grace", "admin")
    workspace.add_user("carl", "contributor")
    config = {
        "auth_method": "oauth2",
        "client_id": "app-1",
        "client_secret": SECRET,
        "oauth_base_url": mailchimp.base_url,
    }
    workspace.add_connection("mc", "mailchimp", config, share="contributors", agree_privacy=True)
    yield workspace
    workspace.close()


def as_user(ws: Workspace, name: str) -> Workspace:
    return Workspace.open(ws.home, user=name, registry=ws.registry, pm=ws.pm)


def approve(url: str) -> dict[str, str]:
    """Open the authorize URL as a browser would; return the query of the redirect to the callback."""
    answer = requests.get(url, allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    location = answer.headers["Location"]
    assert location.startswith(CALLBACK + "?")
    return dict(parse_qsl(urlsplit(location).query))


def complete(ws: Workspace, expected: str, query: dict[str, str], **overrides: Any) -> Any:
    arguments: dict[str, Any] = {
        "state": query.get("state", ""),
        "expected_state": expected,
        "redirect_uri": CALLBACK,
        "query": query,
        **overrides,
    }
    return ws.complete_authorization("mc", **arguments)


def token_of(ws: Workspace) -> str | None:
    config = ws.connections.full_config(ws.get_connection("mc"))
    return config.get("access_token")


def test_begin_then_complete_stores_the_token_encrypted_and_audits(ws: Workspace, mailchimp: MailchimpSandbox) -> None:
    start = ws.begin_authorization("mc", CALLBACK)
    url = urlsplit(start.url)
    assert f"{url.scheme}://{url.netloc}" == mailchimp.base_url and url.path == "/oauth2/authorize"
    query = parse_qs(url.query)
    assert query == {
        "response_type": ["code"],
        "client_id": ["app-1"],
        "redirect_uri": [CALLBACK],
        "state": [start.state],
    }
    assert len(start.state) >= 40 and start.state != ws.begin_authorization("mc", CALLBACK).state
    connection = complete(ws, start.state, approve(start.url))
    assert connection.name == "mc" and connection.config["api_endpoint"].rstrip("/") == mailchimp.base_url
    assert "access_token" not in connection.config and token_of(ws)
    assert ws.test_connection("mc").account.startswith("Sandbox")
    entry = ws.audit_entries()[0]
    assert (entry.user, entry.action, entry.target) == ("ada", "connections.auth", "mc")
    dump = dump_database(ws.home)
    assert SECRET not in dump and str(token_of(ws)) not in dump


def test_the_state_is_kept_hashed_and_used_up(ws: Workspace) -> None:
    start = ws.begin_authorization("mc", CALLBACK)
    assert start.state not in dump_database(ws.home)
    query = approve(start.url)
    complete(ws, start.state, query)
    assert ws.store.settings_with_prefix(authorization.PENDING) == {}
    with pytest.raises(AuthError, match="unknown or already used"):
        complete(ws, start.state, query)  # the same redirect, replayed


def test_a_wrong_state_is_refused_and_nothing_is_stored(ws: Workspace) -> None:
    start = ws.begin_authorization("mc", CALLBACK)
    query = approve(start.url)
    before = token_of(ws)
    with pytest.raises(AuthError, match="wrong state"):
        complete(ws, start.state, {**query, "state": "forged"})
    with pytest.raises(AuthError, match="wrong state"):  # the state argument and the query's must agree
        complete(ws, start.state, query, state="forged")
    assert token_of(ws) is None and before is None
    with pytest.raises(AuthError, match="unknown or already used"):  # a refused redirect used the state up
        complete(ws, start.state, query)


def test_a_state_never_begun_is_refused(ws: Workspace) -> None:
    start = ws.begin_authorization("mc", CALLBACK)
    query = approve(start.url)
    with pytest.raises(AuthError, match="unknown or already used"):
        complete(ws, "made-up", {**query, "state": "made-up"})
    assert token_of(ws) is None


def test_the_user_declining_says_so(ws: Workspace) -> None:
    start = ws.begin_authorization("mc", CALLBACK)
    with pytest.raises(AuthError) as caught:
        complete(ws, start.state, {"error": "access_denied", "state": start.state})
    assert str(caught.value) == ("the platform refused the authorization (access_denied): run it again and accept")
    assert token_of(ws) is None
    start = ws.begin_authorization("mc", CALLBACK)
    with pytest.raises(AuthError, match="carried no code"):
        complete(ws, start.state, {"state": start.state})


def test_an_error_text_from_the_redirect_stays_one_short_line(ws: Workspace) -> None:
    start = ws.begin_authorization("mc", CALLBACK)
    with pytest.raises(AuthError) as caught:
        complete(ws, start.state, {"error": "x\nerror: forged line" + "y" * 300, "state": start.state})
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 200


def test_an_expired_state_is_refused(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    start = ws.begin_authorization("mc", CALLBACK)
    query = approve(start.url)
    later = authorization._now() + 601  # the default lifetime is 10 minutes
    monkeypatch.setattr(authorization, "_now", lambda: later)
    with pytest.raises(AuthError, match="expired"):
        complete(ws, start.state, query)
    assert token_of(ws) is None


def test_abandoned_states_are_forgotten_when_another_begins(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    ws.begin_authorization("mc", CALLBACK)
    ws.begin_authorization("mc", CALLBACK)
    assert len(ws.store.settings_with_prefix(authorization.PENDING)) == 2
    later = authorization._now() + 601
    monkeypatch.setattr(authorization, "_now", lambda: later)
    ws.begin_authorization("mc", CALLBACK)
    assert len(ws.store.settings_with_prefix(authorization.PENDING)) == 1


def test_the_state_is_bound_to_the_redirect_uri_and_the_connection(ws: Workspace, mailchimp: MailchimpSandbox) -> None:
    start = ws.begin_authorization("mc", CALLBACK)
    with pytest.raises(AuthError, match="another connection or callback"):
        complete(ws, start.state, approve(start.url), redirect_uri="http://127.0.0.1:9999/oauth/callback")
    config = {
        "auth_method": "oauth2",
        "client_id": "app-2",
        "client_secret": SECRET,
        "oauth_base_url": mailchimp.base_url,
    }
    ws.add_connection("other", "mailchimp", config, agree_privacy=True)
    start = ws.begin_authorization("other", CALLBACK)
    query = approve(start.url)
    with pytest.raises(AuthError, match="another connection or callback"):
        complete(ws, start.state, query)  # completes 'mc' with the state begun for 'other'
    assert token_of(ws) is None


def test_the_state_is_bound_to_the_user_who_began(ws: Workspace) -> None:
    start = ws.begin_authorization("mc", CALLBACK)
    query = approve(start.url)
    grace = as_user(ws, "grace")
    try:
        with pytest.raises(AuthError, match="another user"):
            complete(grace, start.state, query)
    finally:
        grace.close()


def test_only_admins_may_begin_or_complete(ws: Workspace) -> None:
    start = ws.begin_authorization("mc", CALLBACK)
    carl = as_user(ws, "carl")
    try:
        with pytest.raises(PermissionDenied):
            carl.begin_authorization("mc", CALLBACK)
        with pytest.raises(PermissionDenied):
            complete(carl, start.state, approve(start.url))
    finally:
        carl.close()
    assert [e.target for e in ws.audit_entries()[:2]] == ["connections.auth", "connections.auth"]


def test_a_connection_without_oauth_and_a_bad_redirect_uri_are_config_errors(
    ws: Workspace, mailchimp: MailchimpSandbox
) -> None:
    ws.add_connection("keyed", "mailchimp", mailchimp.demo_connection(), agree_privacy=True)
    with pytest.raises(ConfigError, match="does not use OAuth2"):
        ws.begin_authorization("keyed", CALLBACK)
    for uri in ("/oauth/callback", "ftp://host/cb", "http://127.0.0.1:8400/cb#frag"):
        with pytest.raises(ConfigError, match="redirect URI"):
            ws.begin_authorization("mc", uri)
    assert ws.store.settings_with_prefix(authorization.PENDING) == {}


def test_a_refused_code_is_an_auth_error_and_stores_nothing(ws: Workspace) -> None:
    start = ws.begin_authorization("mc", CALLBACK)
    approve(start.url)
    with pytest.raises(AuthError, match="refused the authorization code"):
        complete(ws, start.state, {"code": "not-issued", "state": start.state})
    assert token_of(ws) is None


def test_campaign_monitor_goes_the_same_way(ws: Workspace) -> None:
    with CampaignMonitorSandbox(seed=32) as cm:
        config = {
            "auth_method": "oauth2",
            "client_id": "app-7",
            "client_secret": SECRET,
            "oauth_base_url": cm.base_url,
            "api_base_url": cm.api_base_url,
        }
        ws.add_connection("cm", "campaignmonitor", config, agree_privacy=True)
        start = ws.begin_authorization("cm", CALLBACK)
        query = approve(start.url)
        ws.complete_authorization(
            "cm", state=query["state"], expected_state=start.state, redirect_uri=CALLBACK, query=query
        )
        stored = ws.connections.full_config(ws.get_connection("cm"))
        assert stored["access_token"] and stored["refresh_token"]
        assert ws.test_connection("cm").account.startswith("Campaign Monitor account")


def test_the_cli_flow_goes_through_begin_and_complete_and_leaves_no_state(ws: Workspace) -> None:
    """``connections auth``: the loopback receiver's redirect completes the begun authorization."""
    seen: list[str] = []

    def open_url(url: str) -> None:
        seen.append(url)
        threading.Thread(target=requests.get, args=(url,), kwargs={"timeout": 10}, daemon=True).start()

    with pytest.raises(AuthError, match="no authorization arrived"):
        ws.authorize_connection("mc", lambda url: None, timeout=1)
    assert ws.store.settings_with_prefix(authorization.PENDING) == {}  # the abandoned state is forgotten
    ws.authorize_connection("mc", open_url, timeout=20)
    assert token_of(ws) and ws.store.settings_with_prefix(authorization.PENDING) == {}
    assert parse_qs(urlsplit(seen[0]).query)["redirect_uri"][0].startswith("http://127.0.0.1:")
