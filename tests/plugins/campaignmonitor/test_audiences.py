"""Listing the Campaign Monitor lists a key can write to: the clients, then each client's lists.

See docs/providers/campaignmonitor.md#listing-lists.
"""

from __future__ import annotations

import pytest
import requests
import responses

from segport import MAX_AUDIENCES, Audience, AuthError
from segport.contract import lists_audiences
from segport.testing.pytest_plugin import ORDERED
from segport_campaignmonitor import CampaignMonitorDestination
from segport_campaignmonitor.auth import CampaignMonitorAuth

API_KEY = "cm-key-123"
BASE = "https://api.createsend.com/api/v3.3"
CONFIG = {"api_key": API_KEY, "api_base_url": BASE}
ACME, GLOBEX = "a" * 32, "b" * 32


def listed(session: requests.Session) -> list[Audience]:
    session.auth = CampaignMonitorAuth(CONFIG)
    return CampaignMonitorDestination().list_audiences(session, CONFIG)


def lists_of(client: str, names: list[str]) -> list[dict[str, str]]:
    return [{"ListID": f"{client[:8]}{i:024d}", "Name": name} for i, name in enumerate(names)]


def test_the_destination_declares_the_capability() -> None:
    assert lists_audiences(CampaignMonitorDestination())


@ORDERED
def test_one_client_lists_by_their_names(rsps: responses.RequestsMock, session: requests.Session) -> None:
    rsps.get(f"{BASE}/clients.json", json=[{"ClientID": ACME, "Name": "Acme"}])
    rsps.get(f"{BASE}/clients/{ACME}/lists.json", json=lists_of(ACME, ["Newsletter", "Customers"]))

    found = listed(session)

    assert found == [
        Audience(f"{ACME[:8]}{0:024d}", "Newsletter", None),  # no cheap count: one call per list would give it
        Audience(f"{ACME[:8]}{1:024d}", "Customers", None),
    ]
    assert all(call.request.headers["Authorization"].startswith("Basic ") for call in rsps.calls)


@ORDERED
def test_several_clients_name_the_client_of_each_list(
    rsps: responses.RequestsMock, session: requests.Session
) -> None:
    clients = [{"ClientID": ACME, "Name": "Acme"}, {"ClientID": GLOBEX, "Name": "Globex"}, {"Name": "no id"}]
    rsps.get(f"{BASE}/clients.json", json=clients)
    rsps.get(f"{BASE}/clients/{ACME}/lists.json", json=lists_of(ACME, ["Newsletter"]))
    rsps.get(f"{BASE}/clients/{GLOBEX}/lists.json", json=[*lists_of(GLOBEX, ["Newsletter"]), {"Name": "no id"}])

    assert [a.name for a in listed(session)] == ["Newsletter (Acme)", "Newsletter (Globex)"]


@ORDERED
def test_the_listing_stops_at_the_cap(rsps: responses.RequestsMock, session: requests.Session) -> None:
    rsps.get(f"{BASE}/clients.json", json=[{"ClientID": ACME, "Name": "Acme"}, {"ClientID": GLOBEX, "Name": "G"}])
    many = [{"ListID": f"{i:032d}", "Name": f"L{i}"} for i in range(MAX_AUDIENCES + 5)]
    rsps.get(f"{BASE}/clients/{ACME}/lists.json", json=many)

    assert len(listed(session)) == MAX_AUDIENCES  # Globex's lists are not asked for


def test_refused_credentials_are_an_auth_error(rsps: responses.RequestsMock, session: requests.Session) -> None:
    rsps.get(f"{BASE}/clients.json", status=401, json={"Code": 100, "Message": "Invalid API Key"})

    with pytest.raises(AuthError, match="code 100"):
        listed(session)
