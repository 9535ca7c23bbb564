"""Fixtures of the web tests: the app over a test workspace, and browsers signed in as its users."""

from __future__ import annotations

import re
from typing import Any, Callable, Iterator

import pytest

from segport import Registry, Workspace
from segport.registry import set_default_registry
from segport.testing.fakes import MemoryPlatform, memory_destination
from segport_mailchimp.destination import MailchimpDestination

pytest.importorskip("fastapi", reason="the web extra is not installed")

from fastapi.testclient import TestClient

from segport.web import create_app

PASSWORDS = {"ada": "ada-secret-pw-1", "carl": "carl-secret-pw-2", "vera": "vera-secret-pw-3"}
_CSRF = re.compile(r'name="csrftoken" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """Return the CSRF token of a page's first form."""
    found = _CSRF.search(html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


@pytest.fixture
def web_ws(ws: Workspace) -> Workspace:
    """The test workspace (ada admin, carl contributor, vera viewer), each with a password."""
    for name, password in PASSWORDS.items():
        ws.context.user_name = name
        ws.identities.set_password(name, password)
    ws.context.user_name = "ada"
    return ws


@pytest.fixture
def app(web_ws: Workspace, database_url: str | None) -> Any:
    """The ASGI application of ``segport serve`` over the test workspace."""
    return create_app(web_ws.home, database_url=database_url)


@pytest.fixture
def client(app: Any) -> Iterator[TestClient]:
    """An anonymous HTTP client (cookies kept between its requests, as a browser keeps them)."""
    with TestClient(app, follow_redirects=False) as anonymous:
        yield anonymous


@pytest.fixture
def signed_in(app: Any) -> Iterator[Callable[[str], TestClient]]:
    """``signed_in('carl')``: a client signed in through the login form as that user."""
    clients: list[TestClient] = []

    def sign_in(name: str) -> TestClient:
        browser = TestClient(app, follow_redirects=False)
        clients.append(browser)
        token = csrf_of(browser.get("/login").text)
        answer = browser.post("/login", data={"csrftoken": token, "username": name, "password": PASSWORDS[name]})
        assert answer.status_code == 303, answer.text
        return browser

    yield sign_in
    for browser in clients:
        browser.close()


@pytest.fixture
def bearer(web_ws: Workspace) -> Callable[[str], dict[str, str]]:
    """``bearer('carl')``: the Authorization header of a new API token of that user."""

    def headers(name: str) -> dict[str, str]:
        web_ws.context.user_name = name
        try:
            _, token = web_ws.identities.create_token(f"test-{name}-{len(web_ws.identities.list_tokens())}")
        finally:
            web_ws.context.user_name = "ada"
        return {"Authorization": f"Bearer {token}"}

    return headers


KEY = "memory-key-0001"
SECRET_KEY = "memory-secret-key-9876"
XSS = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>']


@pytest.fixture
def registry(platform: MemoryPlatform) -> Iterator[Registry]:
    """The memory destination and Mailchimp (which offers OAuth2), as the process-wide registry of the web tests."""
    reg = Registry.from_plugins([memory_destination(platform, batch_size=10, max_concurrency=3), MailchimpDestination])
    set_default_registry(reg)
    yield reg
    set_default_registry(None)


@pytest.fixture
def world(web_ws: Workspace, make_profiles: Any) -> Workspace:
    """Profiles, segment ``All``; a private connection ``vault`` and a shared one ``team``, an export on each."""
    web_ws.add_connection("vault", "memory", {"api_key": SECRET_KEY}, agree_privacy=True)
    web_ws.add_connection("team", "memory", {"api_key": KEY}, share="contributors", agree_privacy=True)
    web_ws.load_profiles(make_profiles(5))
    web_ws.define_segment("All", "email is not empty")
    for name, connection in (("private-news", "vault"), ("team-news", "team")):
        web_ws.add_export(
            name, connection=connection, segments=["All"], email_field="email", options={"audience_id": "aud1"}
        )
    return web_ws
