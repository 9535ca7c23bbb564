"""The sandboxes' OAuth consent page (``oauth_consent``, ``--oauth-consent``), driven with ``requests``.

By default both sandboxes approve at once (their documented behaviour, kept); with the option, their
authorize URL shows a page naming the app with Allow and Deny, as the platforms' login pages do.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
import requests

from segport import AuthError, Registry, Workspace
from segport.plugins import make_manager
from segport.sandboxing import SandboxServer, serve_main
from segport_campaignmonitor import CampaignMonitorDestination
from segport_campaignmonitor.sandbox import CampaignMonitorSandbox
from segport_mailchimp import MailchimpDestination
from segport_mailchimp.sandbox import MailchimpSandbox

CALLBACK = "http://127.0.0.1:8400/oauth/callback"


class Platform:
    """How one sandbox's authorize URL and token exchange look."""

    def __init__(self, name: str, make: Callable[..., SandboxServer], path: str, params: dict[str, str]) -> None:
        self.name, self.make, self.path, self.params = name, make, path, params

    def __repr__(self) -> str:
        return self.name


MAILCHIMP = Platform("mailchimp", MailchimpSandbox, "/oauth2/authorize", {"response_type": "code"})
CAMPAIGN_MONITOR = Platform(
    "campaignmonitor",
    CampaignMonitorSandbox,
    "/oauth",
    {"type": "web_server", "scope": "ImportSubscribers,ManageLists"},
)
TOKEN_PATH = {"mailchimp": "/oauth2/token", "campaignmonitor": "/oauth/token"}


@pytest.fixture(params=[MAILCHIMP, CAMPAIGN_MONITOR], ids=repr)
def platform(request: pytest.FixtureRequest) -> Platform:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def consenting(platform: Platform) -> Iterator[SandboxServer]:
    with platform.make(seed=41, oauth_consent=True) as server:
        yield server


class Form(HTMLParser):
    """The page's form: its method and action, hidden fields, buttons (name, value, label), any script."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.form: dict[str, str] = {}
        self.hidden: dict[str, str] = {}
        self.buttons: list[tuple[str, str, str]] = []
        self.scripts = 0
        self._button: dict[str, str] | None = None
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.form = values
        elif tag == "input" and values.get("type") == "hidden":
            self.hidden[values["name"]] = values["value"]
        elif tag == "button":
            self._button = values
        elif tag == "script" or any(name.startswith("on") for name in values):
            self.scripts += 1

    def handle_data(self, data: str) -> None:
        if self._button is not None and data.strip():
            self.buttons.append((self._button["name"], self._button["value"], data.strip()))
            self._button = None


def authorize_url(sandbox: SandboxServer, platform: Platform, client_id: str = "app-1", state: str = "s-1") -> str:
    query = {**platform.params, "client_id": client_id, "redirect_uri": CALLBACK, "state": state}
    return f"{sandbox.base_url}{platform.path}?{urlencode(query)}"


def redirected(answer: requests.Response) -> dict[str, str]:
    assert answer.status_code == 302, answer.text
    location = answer.headers["Location"]
    assert location.startswith(CALLBACK + "?")
    return dict(parse_qsl(urlsplit(location).query))


def decide(sandbox: SandboxServer, page: Form, decision: str) -> requests.Response:
    action = sandbox.base_url + page.form["action"]
    return requests.post(action, data={**page.hidden, "decision": decision}, allow_redirects=False, timeout=10)


def open_page(sandbox: SandboxServer, platform: Platform, **kwargs: str) -> Form:
    answer = requests.get(authorize_url(sandbox, platform, **kwargs), allow_redirects=False, timeout=10)
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "text/html; charset=utf-8"
    csp = answer.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "script" not in csp
    assert answer.headers["X-Frame-Options"] == "DENY"
    return Form(answer.text)


def test_by_default_the_authorize_url_approves_at_once(platform: Platform) -> None:
    with platform.make(seed=40) as sandbox:
        query = redirected(requests.get(authorize_url(sandbox, platform), allow_redirects=False, timeout=10))
    assert query["code"] and query["state"] == "s-1"


def test_the_consent_page_names_the_app_and_offers_allow_and_deny(
    consenting: SandboxServer, platform: Platform
) -> None:
    page = open_page(consenting, platform)
    assert page.form["method"] == "post" and page.form["action"] == platform.path
    assert page.buttons == [("decision", "allow", "Allow"), ("decision", "deny", "Deny")]
    assert page.hidden == {**platform.params, "client_id": "app-1", "redirect_uri": CALLBACK, "state": "s-1"}
    assert page.scripts == 0


def test_allow_redirects_with_a_code_that_trades_for_a_token(consenting: SandboxServer, platform: Platform) -> None:
    query = redirected(decide(consenting, open_page(consenting, platform), "allow"))
    assert query["state"] == "s-1" and set(query) == {"code", "state"}
    form = {
        "grant_type": "authorization_code",
        "client_id": "app-1",
        "client_secret": "app-secret",
        "redirect_uri": CALLBACK,
        "code": query["code"],
    }
    token = requests.post(consenting.base_url + TOKEN_PATH[platform.name], data=form, timeout=10)
    assert token.status_code == 200 and token.json()["access_token"]


def test_deny_redirects_with_access_denied_and_no_code(consenting: SandboxServer, platform: Platform) -> None:
    query = redirected(decide(consenting, open_page(consenting, platform), "deny"))
    assert query == {"error": "access_denied", "state": "s-1"}


def test_a_post_without_a_decision_or_the_app_is_refused(consenting: SandboxServer, platform: Platform) -> None:
    page = open_page(consenting, platform)
    for form in ({**page.hidden}, {**page.hidden, "decision": "maybe"}, {"decision": "allow"}):
        answer = requests.post(consenting.base_url + platform.path, data=form, allow_redirects=False, timeout=10)
        assert answer.status_code == 400 and answer.json()["error"] == "invalid_request"


def test_names_on_the_page_are_escaped(consenting: SandboxServer, platform: Platform) -> None:
    hostile = '"><img src=x onerror=alert(1)><script>alert(2)</script>'
    answer = requests.get(authorize_url(consenting, platform, client_id=hostile, state=hostile), timeout=10)
    assert "<script>" not in answer.text and "<img" not in answer.text
    page = Form(answer.text)
    assert page.scripts == 0 and page.hidden["client_id"] == hostile and page.hidden["state"] == hostile


@pytest.fixture
def ws(tmp_path: Path, database_url: str | None) -> Iterator[Workspace]:
    registry = Registry.from_plugins([MailchimpDestination, CampaignMonitorDestination])
    workspace = Workspace.create(
        tmp_path / "ws", "ada", database_url=database_url, registry=registry, pm=make_manager(autoload=False)
    )
    yield workspace
    workspace.close()


@pytest.mark.parametrize("decision", ["allow", "deny"])
def test_the_console_flow_through_the_consent_page(
    ws: Workspace, consenting: SandboxServer, platform: Platform, decision: str
) -> None:
    config: dict[str, Any] = {
        "auth_method": "oauth2",
        "client_id": "app-9",
        "client_secret": "app-secret",
        "oauth_base_url": consenting.base_url,
    }
    if platform is CAMPAIGN_MONITOR:
        config["api_base_url"] = consenting.api_base_url  # type: ignore[attr-defined]
    ws.add_connection("c", platform.name, config, agree_privacy=True)
    start = ws.begin_authorization("c", CALLBACK)
    answer = requests.get(start.url, allow_redirects=False, timeout=10)
    page = Form(answer.text)
    assert page.hidden["client_id"] == "app-9" and page.hidden["state"] == start.state
    query = redirected(decide(consenting, page, decision))

    def complete() -> Any:
        return ws.complete_authorization(
            "c", state=query["state"], expected_state=start.state, redirect_uri=CALLBACK, query=query
        )

    if decision == "deny":
        with pytest.raises(AuthError, match=r"refused the authorization \(access_denied\)"):
            complete()
        assert "access_token" not in ws.connections.full_config(ws.get_connection("c"))
    else:
        complete()
        assert ws.test_connection("c").account


def test_serve_main_gives_on_off_flags_to_the_factory() -> None:
    made: dict[str, Any] = {}

    class Made(Exception):
        pass

    def factory(**kwargs: Any) -> Any:
        made.update(kwargs)
        raise Made

    for argv, expected in (([], False), (["--oauth-consent"], True)):
        with pytest.raises(Made):
            serve_main(factory, lambda sb: [], argv, "x", flags={"--oauth-consent": "ask first"})
        assert made["oauth_consent"] is expected


@pytest.mark.parametrize("module", ["segport_mailchimp.sandbox", "segport_campaignmonitor.sandbox"])
def test_the_sandbox_modules_take_the_flag(module: str) -> None:
    done = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "--oauth-consent" in done.stdout


def test_segport_sandbox_takes_the_flag() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "segport", "sandbox", "mailchimp", "--oauth-consent", "--json", "--seed", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        root = info["base_url"].rsplit("/", 1)[0]
        query = {"response_type": "code", "client_id": "app-1", "redirect_uri": CALLBACK, "state": "s"}
        answer = requests.get(f"{root}/oauth2/authorize?{urlencode(query)}", allow_redirects=False, timeout=10)
        assert answer.status_code == 200 and "Allow" in answer.text
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 0
