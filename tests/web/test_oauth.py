"""'Authenticate with Mailchimp' through the console: the browser goes to the platform and comes back.

The browser is the ASGI test client on the console and ``requests`` at the sandbox (a real HTTP
server): the console's 303 sends it to the sandbox's authorize URL, the sandbox's consent page (or
its auto-approval) sends it back to ``/oauth/callback`` on the console.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Iterator
from urllib.parse import parse_qs, parse_qsl, urlsplit

import pytest
import requests
from fastapi.testclient import TestClient

from segport import Registry, Workspace
from segport.registry import set_default_registry
from segport.web import create_app
from segport_campaignmonitor import CampaignMonitorDestination
from segport_campaignmonitor.sandbox import CampaignMonitorSandbox
from segport_mailchimp import MailchimpDestination
from segport_mailchimp.sandbox import MailchimpSandbox

from .conftest import PASSWORDS, csrf_of

CALLBACK = "http://testserver/oauth/callback"
HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')
SECRET = "console-app-secret-77"


@pytest.fixture
def registry() -> Iterator[Registry]:
    """Both platforms' plugins as the server's registry (the workspace fixtures' too)."""
    reg = Registry.from_plugins([MailchimpDestination, CampaignMonitorDestination])
    set_default_registry(reg)
    yield reg
    set_default_registry(None)


@pytest.fixture
def mailchimp() -> Iterator[MailchimpSandbox]:
    with MailchimpSandbox(seed=51, oauth_consent=True) as server:
        yield server


@pytest.fixture
def newsletter(web_ws: Workspace, mailchimp: MailchimpSandbox) -> str:
    """Connection 'Newsletter', added as the console adds it: type, name, share, "I agree", the app's client."""
    config = {
        "auth_method": "oauth2",
        "client_id": "app-1",
        "client_secret": SECRET,
        "oauth_base_url": mailchimp.base_url,
    }
    web_ws.add_connection("Newsletter", "mailchimp", config, share="contributors", agree_privacy=True)
    return "Newsletter"


def authenticate(browser: TestClient, name: str) -> requests.Response:
    """Press 'Authenticate with <platform>' on the connection's page; return the platform's answer."""
    answer = browser.post(f"/admin/connections/{name}/authorize", data={"csrftoken": browser.cookies["segport_csrf"]})
    assert answer.status_code == 303, answer.text
    return requests.get(answer.headers["location"], allow_redirects=False, timeout=10)


def consent(sandbox: MailchimpSandbox, page: requests.Response, decision: str) -> str:
    """Press Allow or Deny on the sandbox's consent page; return the callback path the platform sends back to."""
    assert page.status_code == 200 and "Allow" in page.text and "Deny" in page.text
    hidden = dict(HIDDEN.findall(page.text))
    answer = requests.post(
        sandbox.base_url + "/oauth2/authorize", data={**hidden, "decision": decision}, allow_redirects=False, timeout=10
    )
    return back_path(answer)


def sign_in(browser: TestClient, name: str) -> None:
    token = csrf_of(browser.get("/login").text)
    answer = browser.post("/login", data={"csrftoken": token, "username": name, "password": PASSWORDS[name]})
    assert answer.status_code == 303


def back_path(answer: requests.Response) -> str:
    assert answer.status_code == 302, answer.text
    location = answer.headers["location"]
    assert location.startswith(CALLBACK + "?"), location
    parts = urlsplit(location)
    return f"{parts.path}?{parts.query}"


def token_of(ws: Workspace, name: str) -> Any:
    ws.context.user_name = "ada"
    return ws.connections.full_config(ws.get_connection(name)).get("access_token")


def test_an_admin_authenticates_a_connection_through_the_consent_page(
    signed_in: Callable[[str], TestClient], newsletter: str, mailchimp: MailchimpSandbox, web_ws: Workspace
) -> None:
    browser = signed_in("ada")
    page = authenticate(browser, newsletter)
    query = parse_qs(urlsplit(page.url).query)
    assert query["client_id"] == ["app-1"] and query["redirect_uri"] == [CALLBACK] and query["state"][0]
    back = browser.get(consent(mailchimp, page, "allow"))
    assert back.status_code == 303 and back.headers["location"] == "/admin/connections/Newsletter"
    assert token_of(web_ws, newsletter)
    assert web_ws.test_connection(newsletter).account.startswith("Sandbox")
    entry = web_ws.audit_entries()[0]
    assert (entry.user, entry.action, entry.target) == ("ada", "connections.auth", "Newsletter")


def test_the_flash_line_names_the_connection_and_platform(
    signed_in: Callable[[str], TestClient], newsletter: str, mailchimp: MailchimpSandbox
) -> None:
    browser = signed_in("ada")
    browser.get(consent(mailchimp, authenticate(browser, newsletter), "allow"))
    page = browser.get("/invite/none")  # a page rendered by the layout shows the session's flash lines
    assert "Connection Newsletter is authenticated with Mailchimp." in page.text


def test_deny_shows_the_error_line_and_stores_nothing(
    signed_in: Callable[[str], TestClient], newsletter: str, mailchimp: MailchimpSandbox, web_ws: Workspace
) -> None:
    browser = signed_in("ada")
    back = browser.get(consent(mailchimp, authenticate(browser, newsletter), "deny"))
    assert back.status_code == 502
    assert "the platform refused the authorization (access_denied): run it again and accept" in back.text
    assert token_of(web_ws, newsletter) is None


def test_a_callback_is_used_once_and_only_by_the_browser_that_began(
    signed_in: Callable[[str], TestClient], newsletter: str, mailchimp: MailchimpSandbox, web_ws: Workspace, app: Any
) -> None:
    browser = signed_in("ada")
    path = consent(mailchimp, authenticate(browser, newsletter), "allow")
    with TestClient(app, follow_redirects=False) as other:  # another admin's browser, given ada's callback link
        sign_in(other, "ada")
        refused = other.get(path)
        assert refused.status_code == 502 and "no authorization was begun in this browser" in refused.text
    assert token_of(web_ws, newsletter) is None
    assert browser.get(path).status_code == 303  # the browser that began it completes it
    again = browser.get(path)  # the same redirect, replayed
    assert again.status_code == 502 and "no authorization was begun in this browser" in again.text


def test_a_forged_state_is_refused(
    signed_in: Callable[[str], TestClient], newsletter: str, mailchimp: MailchimpSandbox, web_ws: Workspace
) -> None:
    browser = signed_in("ada")
    path = consent(mailchimp, authenticate(browser, newsletter), "allow")
    query = dict(parse_qsl(urlsplit(path).query))
    forged = browser.get("/oauth/callback", params={"code": query["code"], "state": "forged"})
    assert forged.status_code == 502 and "wrong state" in forged.text
    assert token_of(web_ws, newsletter) is None


def test_only_admins_may_authenticate(
    signed_in: Callable[[str], TestClient], newsletter: str, web_ws: Workspace
) -> None:
    for name in ("carl", "vera"):
        browser = signed_in(name)
        answer = browser.post(
            "/admin/connections/Newsletter/authorize", data={"csrftoken": browser.cookies["segport_csrf"]}
        )
        assert answer.status_code == 403 and "location" not in answer.headers
    assert token_of(web_ws, newsletter) is None


def test_without_sign_in_or_csrf_token_nothing_begins(
    client: TestClient, signed_in: Callable[[str], TestClient], newsletter: str
) -> None:
    assert client.get("/oauth/callback?code=x&state=y").headers["location"].startswith("/login")
    browser = signed_in("ada")
    assert browser.post("/admin/connections/Newsletter/authorize", data={}).status_code == 403
    assert browser.post("/admin/connections/Newsletter/authorize", data={"csrftoken": "forged"}).status_code == 403


def test_an_api_key_connection_has_nothing_to_authenticate(
    signed_in: Callable[[str], TestClient], web_ws: Workspace, mailchimp: MailchimpSandbox
) -> None:
    web_ws.add_connection("Keyed", "mailchimp", mailchimp.demo_connection(), agree_privacy=True)
    browser = signed_in("ada")
    answer = browser.post("/admin/connections/Keyed/authorize", data={"csrftoken": browser.cookies["segport_csrf"]})
    assert answer.status_code == 422 and "does not use OAuth2" in answer.text


def test_the_public_url_is_the_redirect_uri(
    web_ws: Workspace, database_url: str | None, newsletter: str, mailchimp: MailchimpSandbox
) -> None:
    for public, expected in (
        ("https://console.example.com/", "https://console.example.com/oauth/callback"),
        ("http://0.0.0.0:8400", CALLBACK),  # --host 0.0.0.0 names no host a browser reaches: the request's own
    ):
        app = create_app(web_ws.home, database_url=database_url, public_url=public)
        with TestClient(app, follow_redirects=False, base_url="https://testserver") as browser:
            sign_in(browser, "ada")
            answer = browser.post(
                "/admin/connections/Newsletter/authorize", data={"csrftoken": browser.cookies["segport_csrf"]}
            )
            sent = parse_qs(urlsplit(answer.headers["location"]).query)["redirect_uri"][0]
            assert sent == expected.replace("http://testserver", "https://testserver")


def test_campaign_monitor_goes_the_same_way(signed_in: Callable[[str], TestClient], web_ws: Workspace) -> None:
    with CampaignMonitorSandbox(seed=52) as cm:  # auto-approval, its default
        config = {
            "auth_method": "oauth2",
            "client_id": "app-7",
            "client_secret": SECRET,
            "oauth_base_url": cm.base_url,
            "api_base_url": cm.api_base_url,
        }
        web_ws.add_connection("Customers", "campaignmonitor", config, agree_privacy=True)
        browser = signed_in("ada")
        back = browser.get(back_path(authenticate(browser, "Customers")))
        assert back.status_code == 303 and back.headers["location"] == "/admin/connections/Customers"
        assert token_of(web_ws, "Customers")


def test_names_that_need_quoting_go_there_and_back(
    signed_in: Callable[[str], TestClient], web_ws: Workspace, mailchimp: MailchimpSandbox
) -> None:
    name = 'News / "letter" <b>'
    config = {
        "auth_method": "oauth2",
        "client_id": "app-1",
        "client_secret": SECRET,
        "oauth_base_url": mailchimp.base_url,
    }
    web_ws.add_connection(name, "mailchimp", config, agree_privacy=True)
    browser = signed_in("ada")
    page = authenticate(browser, "News%20%2F%20%22letter%22%20%3Cb%3E")
    back = browser.get(consent(mailchimp, page, "allow"))
    assert back.headers["location"] == "/admin/connections/News%20%2F%20%22letter%22%20%3Cb%3E"
    assert token_of(web_ws, name)
