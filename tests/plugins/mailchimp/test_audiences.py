"""Listing a Mailchimp account's audiences: ``GET /lists`` page by page, only the fields used.

See docs/providers/mailchimp.md#listing-audiences.
"""

from __future__ import annotations

import pytest
import requests
import responses
from responses import matchers

import segport_mailchimp.audiences as audiences_module
from segport import MAX_AUDIENCES, Audience, AuthError
from segport.contract import lists_audiences
from segport.testing.pytest_plugin import ORDERED
from segport_mailchimp import MailchimpDestination
from segport_mailchimp.auth import MailchimpAuth

API_KEY = "0123456789abcdef0123456789abcdef-us7"
BASE = "https://us7.api.mailchimp.com/3.0"
FIELDS = "lists.id,lists.name,lists.stats.member_count,total_items"


def page(offset: int, count: int, lists: list[dict[str, object]], total: int) -> responses.BaseResponse:
    query = {"count": str(count), "offset": str(offset), "fields": FIELDS}
    return responses.Response(
        "GET", f"{BASE}/lists", json={"lists": lists, "total_items": total}, match=[matchers.query_param_matcher(query)]
    )


def audience(i: int, members: object = 10) -> dict[str, object]:
    return {"id": f"a{i:09d}", "name": f"Audience {i}", "stats": {"member_count": members}}


def listed(session: requests.Session) -> list[Audience]:
    session.auth = MailchimpAuth({"api_key": API_KEY})
    return MailchimpDestination().list_audiences(session, {"api_key": API_KEY})


def test_the_destination_declares_the_capability() -> None:
    assert lists_audiences(MailchimpDestination())


@ORDERED
def test_one_page_asks_only_the_fields_it_uses(rsps: responses.RequestsMock, session: requests.Session) -> None:
    rsps.add(page(0, 1000, [audience(1, 1234), {"id": "b2", "name": "No stats"}], 2))

    found = listed(session)

    assert found == [Audience("a000000001", "Audience 1", 1234), Audience("b2", "No stats", None)]
    assert rsps.calls[0].request.headers["Authorization"].startswith("Basic ")


@ORDERED
def test_pages_follow_offset_until_total_items(
    rsps: responses.RequestsMock, session: requests.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audiences_module, "PAGE", 2)
    rsps.add(page(0, 2, [audience(1), audience(2)], 5))
    rsps.add(page(2, 2, [audience(3), audience(4)], 5))
    rsps.add(page(4, 2, [audience(5)], 5))

    assert [a.id for a in listed(session)] == [f"a{i:09d}" for i in range(1, 6)]


@ORDERED
def test_an_empty_page_ends_the_listing_whatever_total_items_says(
    rsps: responses.RequestsMock, session: requests.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audiences_module, "PAGE", 2)
    rsps.add(page(0, 2, [audience(1), audience(2)], 9))
    rsps.add(page(2, 2, [], 9))

    assert len(listed(session)) == 2


@ORDERED
def test_the_listing_stops_at_the_cap(rsps: responses.RequestsMock, session: requests.Session) -> None:
    rsps.add(page(0, 1000, [audience(i) for i in range(1000)], 1500))

    found = listed(session)

    assert len(found) == MAX_AUDIENCES  # no second page is asked for


def test_odd_values_are_not_counts(rsps: responses.RequestsMock, session: requests.Session) -> None:
    items = [audience(1, -1), audience(2, "12"), audience(3, True), {"id": "x\n4", "name": None, "stats": []}]
    rsps.add(page(0, 1000, items, 4))

    found = listed(session)

    assert [a.member_count for a in found] == [None, None, None, None]
    assert found[3] == Audience("x 4", "", None)  # one line, whatever the answer held


def test_refused_credentials_are_an_auth_error(rsps: responses.RequestsMock, session: requests.Session) -> None:
    problem = {"type": "t", "title": "API Key Invalid", "status": 401, "detail": "Your API key may be invalid."}
    rsps.get(f"{BASE}/lists", status=401, json=problem)

    with pytest.raises(AuthError, match="refused the credentials on GET /lists"):
        listed(session)
