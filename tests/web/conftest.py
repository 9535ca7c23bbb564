"""Fixtures of the web tests: the app over a test workspace, and browsers signed in as its users."""

from __future__ import annotations

import re
from typing import Any, Callable, Iterator

import pytest

from segport import Workspace

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
