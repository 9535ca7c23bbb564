"""OAuth2 against the Campaign Monitor sandbox: loopback authorization, then refresh on code 121."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Iterator

import pytest
import requests

from segport import AuthError, Registry, Workspace
from segport_campaignmonitor import CampaignMonitorDestination
from segport_campaignmonitor.sandbox import CampaignMonitorSandbox


@pytest.fixture
def sandbox() -> Iterator[CampaignMonitorSandbox]:
    with CampaignMonitorSandbox(seed=6) as server:
        yield server


@pytest.fixture
def ws(tmp_path: Path, sandbox: CampaignMonitorSandbox) -> Iterator[Workspace]:
    workspace = Workspace.create(tmp_path / "ws", "ada", registry=Registry.from_plugins([CampaignMonitorDestination]))
    config = {
        "auth_method": "oauth2",
        "client_id": "app-7",
        "client_secret": "cm-app-secret",
        "oauth_base_url": sandbox.base_url,
        "api_base_url": sandbox.api_base_url,
    }
    workspace.add_connection("cm", "campaignmonitor", config, agree_privacy=True)
    profiles = tmp_path / "p.csv"
    profiles.write_text(
        "id,email,name\n1,ada@shop.segport-test.net,Ada\n2,bob@shop.segport-test.net,Bob\n", encoding="utf-8"
    )
    workspace.load_profiles(profiles)
    workspace.define_segment("All", "email is not empty")
    workspace.add_export(
        "e",
        connection="cm",
        segments=["All"],
        email_field="email",
        mapping={"Name": "name"},
        options={"list_id": sandbox.list_id},
    )
    yield workspace
    workspace.close()


def browser(url: str) -> None:
    threading.Thread(target=requests.get, args=(url,), kwargs={"timeout": 10}, daemon=True).start()


def tokens(ws: Workspace) -> tuple[str, str]:
    config = ws.connections.full_config(ws.get_connection("cm"))
    return config["access_token"], config["refresh_token"]


def test_authorize_then_an_expired_token_is_refreshed_once_and_stored(
    ws: Workspace, sandbox: CampaignMonitorSandbox
) -> None:
    ws.authorize_connection("cm", browser, timeout=20)
    first = tokens(ws)
    sandbox.expire_tokens()

    run = ws.run_export("e")

    assert run.status.value == "succeeded" and run.counts["created"] == 2
    second = tokens(ws)
    assert second[0] != first[0] and second[1] != first[1]  # the refreshed pair was stored
    assert b"cm-app-secret" not in (ws.home / "segport.db").read_bytes()
    assert ws.test_connection("cm").status == "ok"  # works with the stored refreshed token


def test_an_expired_token_whose_refresh_fails_is_a_clear_auth_error(
    ws: Workspace, sandbox: CampaignMonitorSandbox
) -> None:
    ws.authorize_connection("cm", browser, timeout=20)
    ws.connections.save_secrets(ws.get_connection("cm"), {"refresh_token": "not-a-grant"})
    sandbox.expire_tokens()
    with pytest.raises(AuthError, match="connections auth") as info:
        ws.test_connection("cm")
    assert "cm-app-secret" not in str(info.value) and "not-a-grant" not in str(info.value)
