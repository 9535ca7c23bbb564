"""OAuth2 through the engine's loopback flow against the sandbox's authorize/token/metadata endpoints."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Iterator
from urllib.parse import parse_qs, urlparse

import pytest
import requests

from segport import AuthError, Workspace
from segport.registry import Registry
from segport.testing import dump_database
from segport_mailchimp import MailchimpDestination
from segport_mailchimp.sandbox import MailchimpSandbox


@pytest.fixture
def sandbox() -> Iterator[MailchimpSandbox]:
    with MailchimpSandbox(seed=5) as server:
        yield server


@pytest.fixture
def ws(tmp_path: Path, sandbox: MailchimpSandbox) -> Iterator[Workspace]:
    registry = Registry.from_plugins([MailchimpDestination])
    workspace = Workspace.create(tmp_path / "ws", "ada", registry=registry)
    workspace.add_connection(
        "mc",
        "mailchimp",
        {
            "auth_method": "oauth2",
            "client_id": "app-1",
            "client_secret": "app-secret-xyz",
            "oauth_base_url": sandbox.base_url,
        },
        agree_privacy=True,
    )
    yield workspace
    workspace.close()


def browser(url: str) -> None:
    """Follow the authorize URL like a browser would (the sandbox approves and redirects)."""
    threading.Thread(target=requests.get, args=(url,), kwargs={"timeout": 10}, daemon=True).start()


def test_authorize_stores_the_token_and_the_connection_works(ws: Workspace, sandbox: MailchimpSandbox) -> None:
    seen: list[str] = []

    def open_url(url: str) -> None:
        seen.append(url)
        browser(url)

    ws.authorize_connection("mc", open_url, timeout=20)
    query = parse_qs(urlparse(seen[0]).query)
    assert query["client_id"] == ["app-1"] and query["response_type"] == ["code"] and query["state"][0]
    assert query["redirect_uri"][0].startswith("http://127.0.0.1:")
    connection = ws.get_connection("mc")
    assert connection.config["api_endpoint"].rstrip("/") == sandbox.base_url.rstrip("/")
    assert "access_token" not in connection.config and connection.has_secrets
    assert ws.test_connection("mc").status == "ok"
    raw = (ws.home / "segport.db").read_bytes()
    assert b"app-secret-xyz" not in raw


def test_a_redirect_with_the_wrong_state_is_refused(ws: Workspace) -> None:
    before = dump_database(ws.home)

    def forged(url: str) -> None:
        redirect = parse_qs(urlparse(url).query)["redirect_uri"][0]
        threading.Thread(
            target=requests.get, args=(f"{redirect}?code=abc&state=forged",), kwargs={"timeout": 10}, daemon=True
        ).start()

    with pytest.raises(AuthError, match="wrong state"):
        ws.authorize_connection("mc", forged, timeout=20)
    assert dump_database(ws.home) == before


def test_no_redirect_times_out_with_a_clear_error(ws: Workspace) -> None:
    with pytest.raises(AuthError, match="no authorization arrived"):
        ws.authorize_connection("mc", lambda url: None, timeout=1)


def test_oauth_connection_without_a_token_tells_how_to_get_one(ws: Workspace) -> None:
    with pytest.raises(AuthError, match="connections auth"):
        ws.test_connection("mc")
