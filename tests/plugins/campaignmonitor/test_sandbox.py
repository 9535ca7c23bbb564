"""The Campaign Monitor sandbox, driven over HTTP exactly as an exporter would.

The platform facts it follows: docs/providers/campaignmonitor.md.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Iterator
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import requests

from segport_campaignmonitor.sandbox import CampaignMonitorSandbox


@pytest.fixture
def sb() -> Iterator[CampaignMonitorSandbox]:
    sandbox = CampaignMonitorSandbox(seed=7)
    sandbox.start()
    yield sandbox
    sandbox.stop()


@pytest.fixture
def api(sb: CampaignMonitorSandbox) -> Iterator[requests.Session]:
    with requests.Session() as session:
        # the official clients' Basic form (docs/providers/campaignmonitor.md#api-key-authentication)
        session.auth = (sb.api_key, "x")
        yield session


@pytest.fixture
def url(sb: CampaignMonitorSandbox) -> Any:
    """``url("/lists/{list}/customfields")`` -> the API URL with ``.json`` and the list id filled in."""

    def make(path: str) -> str:
        return sb.api_base_url + path.format(list=sb.list_id, client=sb.client_id) + ".json"

    return make


def assert_error(resp: requests.Response, status: int, code: int, message: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["Content-Type"].startswith("application/json")
    body: dict[str, Any] = resp.json()
    assert body["Code"] == code, body
    assert isinstance(body["Message"], str) and body["Message"]
    if message is not None:
        assert body["Message"] == message
    return body


def row(email: str, consent: str | None = "Yes", **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"EmailAddress": email, **extra}
    if consent is not None:
        out["ConsentToTrack"] = consent
    return out


def seg(value: str, clear: bool = False, key: str = "Segments") -> dict[str, Any]:
    return {"Key": key, "Value": value, "Clear": True} if clear else {"Key": key, "Value": value}


def import_rows(api: requests.Session, url: Any, rows: list[dict[str, Any]], **extra: Any) -> requests.Response:
    return api.post(url("/subscribers/{list}/import"), json={"Subscribers": rows, "Resubscribe": False, **extra})


def make_segments_field(api: requests.Session, url: Any, options: tuple[str, ...] = ("vip", "beta", "churn")) -> None:
    resp = api.post(
        url("/lists/{list}/customfields"),
        json={
            "FieldName": "Segments",
            "DataType": "MultiSelectMany",
            "Options": list(options),
            "VisibleInPreferenceCenter": False,
        },
    )
    assert resp.status_code == 201 and resp.json() == "[segments]"


def fields_of(sb: CampaignMonitorSandbox, email: str) -> dict[str, Any]:
    return sb.state()["lists"][sb.list_id]["subscribers"][email]["CustomFields"]  # type: ignore[no-any-return]


# -- identity, auth, clients and lists (docs/providers/campaignmonitor.md#connecting) -----------------------


def test_identity_is_seeded_and_demo_config_points_at_the_server(sb: CampaignMonitorSandbox) -> None:
    for value in (sb.api_key, sb.client_id, sb.list_id):
        assert re.fullmatch(r"[0-9a-f]{32}", value)
    twin = CampaignMonitorSandbox(seed=7)
    assert (twin.api_key, twin.client_id, twin.list_id) == (sb.api_key, sb.client_id, sb.list_id)
    assert CampaignMonitorSandbox(seed=8).list_id != sb.list_id
    given = CampaignMonitorSandbox(seed=7, api_key="k" * 20)
    assert given.api_key == "k" * 20 and given.list_id == sb.list_id
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", sb.base_url)
    assert sb.api_base_url == sb.base_url + "/api/v3.3"
    assert sb.demo_connection() == {"api_key": sb.api_key, "api_base_url": sb.api_base_url}
    assert sb.demo_export_options() == {"list_id": sb.list_id}
    assert sb.summary() == {"list": sb.list_id, "subscribers": {}, "segments field options": {}, "rule segments": []}


def test_basic_auth_codes_50_and_100(sb: CampaignMonitorSandbox, api: requests.Session, url: Any) -> None:
    clients = url("/clients")
    assert_error(requests.get(clients), 401, 50, "Must supply a valid HTTP Basic Authorization header")
    assert_error(requests.get(clients, headers={"Authorization": "Basic !!not-base64"}), 401, 50)
    assert_error(requests.get(clients, headers={"Authorization": "Token abc"}), 401, 50)
    assert_error(requests.get(clients, auth=("wrong-key", "x")), 401, 100, "Invalid API Key")
    assert requests.get(clients, auth=(sb.api_key, "anything")).status_code == 200  # password ignored
    assert requests.get(clients, auth=(sb.api_key, "")).status_code == 200
    sb.revoke_key()
    assert_error(api.get(clients), 401, 100, "Invalid API Key")


def test_clients_lists_and_list_details(sb: CampaignMonitorSandbox, api: requests.Session, url: Any) -> None:
    assert api.get(url("/clients")).json() == [{"ClientID": sb.client_id, "Name": "Sandbox client"}]
    assert api.get(url("/clients/{client}/lists")).json() == [{"ListID": sb.list_id, "Name": "Sandbox list"}]
    assert_error(api.get(sb.api_base_url + "/clients/" + "0" * 32 + "/lists.json"), 401, 102, "Invalid ClientID")
    assert api.get(url("/lists/{list}")).json() == {
        "ListID": sb.list_id,
        "Title": "Sandbox list",
        "UnsubscribePage": "",
        "UnsubscribeSetting": "AllClientLists",
        "ConfirmedOptIn": False,
        "ConfirmationSuccessPage": "",
    }
    assert_error(api.get(sb.api_base_url + "/lists/" + "0" * 32 + ".json"), 400, 101, "Invalid ListID")
    sb.delete_list()
    for resp in (
        api.get(url("/lists/{list}")),
        api.get(url("/lists/{list}/customfields")),
        import_rows(api, url, [row("a@example.com")]),
        api.get(url("/lists/{list}/active")),
        api.get(url("/lists/{list}/segments")),
        api.post(url("/subscribers/{list}"), json=row("a@example.com")),
    ):
        assert_error(resp, 400, 101)
    assert api.get(url("/clients/{client}/lists")).json() == []


# -- custom fields (docs/providers/campaignmonitor.md#custom-fields) -----------------------------------------


def test_custom_fields_create_list_and_errors(sb: CampaignMonitorSandbox, api: requests.Session, url: Any) -> None:
    fields = url("/lists/{list}/customfields")
    assert api.get(fields).json() == []
    created = api.post(fields, json={"FieldName": "Favourite Colour", "DataType": "Text"})
    assert created.status_code == 201 and created.json() == "[favouritecolour]"
    make_segments_field(api, url)
    assert api.get(fields).json() == [
        {
            "FieldName": "Favourite Colour",
            "Key": "[favouritecolour]",
            "DataType": "Text",
            "FieldOptions": [],
            "VisibleInPreferenceCenter": True,
        },
        {
            "FieldName": "Segments",
            "Key": "[segments]",
            "DataType": "MultiSelectMany",
            "FieldOptions": ["vip", "beta", "churn"],
            "VisibleInPreferenceCenter": False,
        },
    ]
    assert_error(api.post(fields, json={"FieldName": "segments", "DataType": "Text"}), 400, 255)
    assert_error(api.post(fields, json={"FieldName": "Plan", "DataType": "Colour"}), 400, 259)
    assert_error(api.post(fields, json={"FieldName": "Plan", "DataType": "Number", "Options": ["1"]}), 400, 256)
    assert_error(api.post(fields, json={"FieldName": "Plan", "DataType": "MultiSelectOne", "Options": []}), 400, 257)
    assert_error(api.post(fields, json={"FieldName": "Tags", "DataType": "MultiSelectMany"}), 400, 257)
    assert_error(api.post(fields, json={"FieldName": " ", "DataType": "Text"}), 400, 254)
    assert (
        api.post(fields, json={"FieldName": "Plan", "DataType": "MultiSelectOne", "Options": ["a", "b"]}).json()
        == "[plan]"
    )
    assert list(sb.state()["lists"][sb.list_id]["custom_fields"]) == ["[favouritecolour]", "[segments]", "[plan]"]


def test_custom_field_options_update_and_delete(sb: CampaignMonitorSandbox, api: requests.Session, url: Any) -> None:
    make_segments_field(api, url)
    api.post(url("/lists/{list}/customfields"), json={"FieldName": "Website", "DataType": "Text"})
    options = sb.api_base_url + f"/lists/{sb.list_id}/customfields/{quote('[segments]', safe='')}/options.json"
    keep = api.put(options, json={"Options": ["beta", "new"], "KeepExistingOptions": True})
    assert keep.status_code == 200 and keep.content == b""
    assert sb.state()["lists"][sb.list_id]["custom_fields"]["[segments]"]["FieldOptions"] == [
        "vip",
        "beta",
        "churn",
        "new",
    ]
    sb.add_subscriber("a@example.com", custom_fields={"Segments": ["vip", "new"]})
    api.put(options, json={"Options": ["new", "other"], "KeepExistingOptions": False}).raise_for_status()
    assert sb.state()["lists"][sb.list_id]["custom_fields"]["[segments]"]["FieldOptions"] == ["new", "other"]
    assert fields_of(sb, "a@example.com") == {"Segments": ["new"]}  # values no longer options are dropped
    base = sb.api_base_url + f"/lists/{sb.list_id}/customfields/"
    assert_error(api.put(base + "%5Bnope%5D/options.json", json={"Options": ["x"]}), 400, 253)
    assert_error(api.put(base + "segments/options.json", json={"Options": ["x"]}), 400, 253)  # brackets required
    assert_error(api.put(base + "%5Bwebsite%5D/options.json", json={"Options": ["x"]}), 400, 256)
    assert api.delete(base + "%5Bsegments%5D.json").status_code == 200
    assert [f["Key"] for f in api.get(url("/lists/{list}/customfields")).json()] == ["[website]"]
    assert fields_of(sb, "a@example.com") == {}


# -- import (docs/providers/campaignmonitor.md#import) -----------------------------------------------------


def test_import_full_success_shape(sb: CampaignMonitorSandbox, api: requests.Session, url: Any) -> None:
    sb.add_subscriber("old@example.com", name="Old")
    resp = import_rows(
        api,
        url,
        [
            row("ada@example.com", Name="Ada Lovelace"),
            row("OLD@example.com", "no"),
            row("bob@example.com", "Unchanged"),
        ],
        QueueSubscriptionBasedAutoResponders=False,
        RestartSubscriptionBasedAutoresponders=False,
    )
    assert resp.status_code == 201, resp.text
    assert resp.json() == {
        "FailureDetails": [],
        "TotalUniqueEmailsSubmitted": 3,
        "TotalExistingSubscribers": 1,
        "TotalNewSubscribers": 2,
        "DuplicateEmailsInSubmission": [],
    }
    subs = sb.state()["lists"][sb.list_id]["subscribers"]
    assert subs["ada@example.com"] == {
        "EmailAddress": "ada@example.com",
        "Name": "Ada Lovelace",
        "State": "Active",
        "ConsentToTrack": "Yes",
        "CustomFields": {},
    }
    assert subs["old@example.com"]["ConsentToTrack"] == "No" and subs["old@example.com"]["Name"] == "Old"
    assert subs["bob@example.com"]["ConsentToTrack"] == "No"  # Unchanged on a new subscriber (UNCONFIRMED)
    assert sb.summary()["subscribers"] == {"Active": 3}


def test_import_partial_failure_envelope_with_every_code(
    sb: CampaignMonitorSandbox, api: requests.Session, url: Any
) -> None:
    for email, state in (
        ("deleted@example.com", "Deleted"),
        ("unsub@example.com", "Unsubscribed"),
        ("bounced@example.com", "Bounced"),
        ("unconf@example.com", "Unconfirmed"),
    ):
        sb.add_subscriber(email, state, name="Before")
    sb.suppress("Suppressed@Example.com")
    rows = [
        row("example+1@example"),
        row("noconsent@example.com", None),
        row("badconsent@example.com", "maybe"),
        row("suppressed@example.com"),
        row("deleted@example.com", Name="After"),
        row("unsub@example.com"),
        row("bounced@example.com"),
        row("unconf@example.com"),
        row("fine@example.com"),
        row("dup@example.com", Name="First"),
        row("Dup@example.com", Name="Last"),
    ]
    resp = import_rows(api, url, rows)
    body = assert_error(resp, 400, 210, "Subscriber Import had some failures")
    result = body["ResultData"]
    assert (
        result["TotalUniqueEmailsSubmitted"],
        result["TotalNewSubscribers"],
        result["TotalExistingSubscribers"],
    ) == (10, 2, 0)
    assert result["DuplicateEmailsInSubmission"] == ["Dup@example.com"]
    assert result["FailureDetails"] == [
        {"EmailAddress": "example+1@example", "Code": 1, "Message": "Invalid Email Address"},
        {"EmailAddress": "noconsent@example.com", "Code": 214, "Message": "Please provide a consent to track value"},
        {
            "EmailAddress": "badconsent@example.com",
            "Code": 215,
            "Message": "Please provide a valid consent to track value",
        },
        {"EmailAddress": "suppressed@example.com", "Code": 204, "Message": "In Suppression List"},
        {"EmailAddress": "deleted@example.com", "Code": 205, "Message": "Is Deleted"},
        {"EmailAddress": "unsub@example.com", "Code": 206, "Message": "Is Unsubscribed"},
        {"EmailAddress": "bounced@example.com", "Code": 207, "Message": "Is Bounced"},
        {"EmailAddress": "unconf@example.com", "Code": 208, "Message": "Is Unconfirmed"},
    ]
    subs = sb.state()["lists"][sb.list_id]["subscribers"]
    assert subs["deleted@example.com"]["State"] == "Deleted" and subs["deleted@example.com"]["Name"] == "Before"
    assert "suppressed@example.com" not in subs and "noconsent@example.com" not in subs
    assert subs["dup@example.com"]["Name"] == "Last"  # the last occurrence wins
    assert subs["fine@example.com"]["State"] == "Active"


def test_import_resubscribe_true_reactivates(sb: CampaignMonitorSandbox, api: requests.Session, url: Any) -> None:
    for email, state in (
        ("deleted@example.com", "Deleted"),
        ("unsub@example.com", "Unsubscribed"),
        ("bounced@example.com", "Bounced"),
        ("unconf@example.com", "Unconfirmed"),
    ):
        sb.add_subscriber(email, state)
    sb.suppress("suppressed@example.com")
    emails = [
        "deleted@example.com",
        "unsub@example.com",
        "bounced@example.com",
        "unconf@example.com",
        "suppressed@example.com",
    ]
    resp = import_rows(api, url, [row(e) for e in emails], Resubscribe=True)
    assert resp.status_code == 201, resp.text
    assert (resp.json()["TotalExistingSubscribers"], resp.json()["TotalNewSubscribers"]) == (4, 1)
    assert sb.summary()["subscribers"] == {"Active": 5}
    assert sb.state()["suppression_list"] == []


def test_import_request_level_errors(api: requests.Session, url: Any, sb: CampaignMonitorSandbox) -> None:
    too_many = [row(f"u{i}@example.com") for i in range(1001)]
    assert_error(
        import_rows(api, url, too_many),
        400,
        209,
        "Too many subscribers in this batch. You can only add 1000 subscribers in one call",
    )
    assert_error(import_rows(api, url, []), 400, 212, "No subscribers were provided in this batch")
    assert_error(api.post(url("/subscribers/{list}/import"), json={}), 400, 212)
    malformed = api.post(url("/subscribers/{list}/import"), data="{nope", headers={"Content-Type": "application/json"})
    assert_error(malformed, 400, 400, "Failed to deserialize your request")
    assert_error(import_rows(api, url, ["not an object"]), 400, 400)  # type: ignore[list-item]
    started = time.perf_counter()
    resp = import_rows(api, url, too_many[:1000])
    assert resp.status_code == 201 and resp.json()["TotalNewSubscribers"] == 1000
    assert time.perf_counter() - started < 1.0
    assert len(api.get(url("/lists/{list}/active")).json()["Results"]) == 1000


def test_multiselectmany_add_clear_one_clear_all_and_unknown_option(
    sb: CampaignMonitorSandbox, api: requests.Session, url: Any
) -> None:
    make_segments_field(api, url)
    email = "ada@example.com"
    assert import_rows(api, url, [row(email, CustomFields=[seg("vip"), seg("beta")])]).status_code == 201
    assert fields_of(sb, email) == {"Segments": ["vip", "beta"]}
    # several items with the same key ADD (merge, not replace); bracketed/any-case keys match the field
    import_rows(api, url, [row(email, CustomFields=[seg("churn", key="[SEGMENTS]")])]).raise_for_status()
    assert fields_of(sb, email) == {"Segments": ["vip", "beta", "churn"]}
    import_rows(api, url, [row(email, CustomFields=[seg("beta", clear=True)])]).raise_for_status()  # clear one
    assert fields_of(sb, email) == {"Segments": ["vip", "churn"]}
    import_rows(api, url, [row(email, CustomFields=[seg("nope"), seg("x" * 251)])]).raise_for_status()
    assert fields_of(sb, email) == {"Segments": ["vip", "churn"]}  # unknown option and >250 chars ignored
    import_rows(api, url, [row(email, CustomFields=[seg("", clear=True), seg("beta")])]).raise_for_status()
    assert fields_of(sb, email) == {"Segments": ["beta"]}  # clear all, then add
    import_rows(api, url, [row(email, CustomFields=[seg("", clear=True)])]).raise_for_status()
    assert fields_of(sb, email) == {}
    import_rows(api, url, [row(email, CustomFields=[{"Key": "unknownfield", "Value": "x"}])]).raise_for_status()
    assert fields_of(sb, email) == {}  # unknown keys ignored


def test_scalar_custom_fields(sb: CampaignMonitorSandbox, api: requests.Session, url: Any) -> None:
    fields = url("/lists/{list}/customfields")
    for name, kind, options in (
        ("Website", "Text", None),
        ("Age", "Number", None),
        ("Born", "Date", None),
        ("Plan", "MultiSelectOne", ["free", "pro"]),
        ("Country", "Country", None),
    ):
        api.post(fields, json={"FieldName": name, "DataType": kind, "Options": options}).raise_for_status()
    items = [
        {"Key": "website", "Value": "https://example.com"},
        {"Key": "Age", "Value": 42},
        {"Key": "[born]", "Value": "1915/12/10"},
        {"Key": "plan", "Value": "pro"},
        {"Key": "country", "Value": "Australia"},
    ]
    import_rows(api, url, [row("ada@example.com", CustomFields=items)]).raise_for_status()
    assert fields_of(sb, "ada@example.com") == {
        "Website": "https://example.com",
        "Age": "42",
        "Born": "1915-12-10",
        "Plan": "pro",
        "Country": "Australia",
    }
    ignored = [
        {"Key": "age", "Value": "old"},
        {"Key": "born", "Value": "1815-01-01"},
        {"Key": "born", "Value": "1915-13-45"},
        {"Key": "plan", "Value": "gold"},
        {"Key": "born", "Value": "2100-01-01"},
        {"Key": "website", "Value": ""},
    ]
    import_rows(api, url, [row("ada@example.com", CustomFields=ignored)]).raise_for_status()
    assert fields_of(sb, "ada@example.com")["Age"] == "42" and len(fields_of(sb, "ada@example.com")) == 5
    clears = [
        {"Key": "website", "Value": "", "Clear": True},
        {"Key": "born", "Value": "0000-00-00"},
        {"Key": "plan", "Value": "pro", "Clear": True},
    ]
    import_rows(api, url, [row("ada@example.com", CustomFields=clears)]).raise_for_status()
    assert fields_of(sb, "ada@example.com") == {"Age": "42", "Country": "Australia"}


# -- single subscribers (docs/providers/campaignmonitor.md#subscribers) --------------------------------------


def test_single_add_get_unsubscribe_delete(sb: CampaignMonitorSandbox, api: requests.Session, url: Any) -> None:
    make_segments_field(api, url)
    subscribers = url("/subscribers/{list}")
    resp = api.post(
        subscribers, json=row("Ada@Example.com", Name="Ada", Resubscribe=False, CustomFields=[seg("vip"), seg("beta")])
    )
    assert resp.status_code == 201 and resp.json() == "Ada@Example.com"
    got = api.get(subscribers, params={"email": "ada@example.com"})
    details = got.json()
    assert details["EmailAddress"] == "Ada@Example.com" and details["State"] == "Active"
    assert details["CustomFields"] == [{"Key": "Segments", "Value": "vip"}, {"Key": "Segments", "Value": "beta"}]
    assert set(details) == {
        "EmailAddress",
        "Name",
        "Date",
        "ListJoinedDate",
        "State",
        "CustomFields",
        "ReadsEmailWith",
        "ConsentToTrack",
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", details["Date"])
    assert_error(api.get(subscribers, params={"email": "nobody@example.com"}), 400, 203)
    assert_error(api.post(subscribers, json=row("bad@")), 400, 1, "Invalid Email Address")
    assert_error(api.post(subscribers, json=row("x@example.com", None)), 400, 214)
    unsub = api.post(url("/subscribers/{list}/unsubscribe"), json={"EmailAddress": "ada@example.com"})
    assert unsub.status_code == 200 and unsub.content == b""
    assert_error(api.post(subscribers, json=row("ada@example.com")), 400, 206, "Is Unsubscribed")
    assert api.post(subscribers, json=row("ada@example.com", Resubscribe=True)).status_code == 201
    deleted = api.delete(subscribers, params={"email": "ada@example.com"})
    assert deleted.status_code == 200 and deleted.content == b""
    assert api.get(subscribers, params={"email": "ada@example.com"}).json()["State"] == "Deleted"
    assert_error(api.delete(subscribers, params={"email": "nobody@example.com"}), 400, 203)
    assert_error(api.post(url("/subscribers/{list}/unsubscribe"), json={"EmailAddress": "no@example.com"}), 400, 203)


def test_update_with_email_change(sb: CampaignMonitorSandbox, api: requests.Session, url: Any) -> None:
    sb.add_subscriber("a@example.com", name="A")
    sb.add_subscriber("b@example.com")
    subscribers = url("/subscribers/{list}")
    assert_error(api.put(subscribers, params={"email": "a@example.com"}, json=row("b@example.com")), 400, 201)
    assert_error(api.put(subscribers, params={"email": "zz@example.com"}, json=row("c@example.com")), 400, 203)
    moved = api.put(subscribers, params={"email": "a@example.com"}, json=row("c@example.com", Name="C"))
    assert moved.status_code == 200
    subs = sb.state()["lists"][sb.list_id]["subscribers"]
    assert "a@example.com" not in subs and subs["c@example.com"]["Name"] == "C"


def test_paged_subscriber_lists(sb: CampaignMonitorSandbox, api: requests.Session, url: Any) -> None:
    for i in range(25):
        sb.add_subscriber(f"u{i:02d}@example.com", name=f"N{24 - i:02d}")
    sb.add_subscriber("gone@example.com", "Unsubscribed")
    sb.add_subscriber("bounce@example.com", "Bounced")
    page = api.get(url("/lists/{list}/active"), params={"page": 3, "pagesize": 10}).json()
    assert {k: v for k, v in page.items() if k != "Results"} == {
        "ResultsOrderedBy": "email",
        "OrderDirection": "asc",
        "PageNumber": 3,
        "PageSize": 10,
        "RecordsOnThisPage": 5,
        "TotalNumberOfRecords": 25,
        "NumberOfPages": 3,
    }
    assert [r["EmailAddress"] for r in page["Results"]] == [f"u{i}@example.com" for i in range(20, 25)]
    by_name = api.get(
        url("/lists/{list}/active"), params={"orderfield": "name", "orderdirection": "desc", "pagesize": "10"}
    ).json()
    assert by_name["Results"][0]["Name"] == "N24"
    assert api.get(url("/lists/{list}/active")).json()["PageSize"] == 1000
    assert [r["EmailAddress"] for r in api.get(url("/lists/{list}/unsubscribed")).json()["Results"]] == [
        "gone@example.com"
    ]
    assert api.get(url("/lists/{list}/bounced")).json()["TotalNumberOfRecords"] == 1
    assert api.get(url("/lists/{list}/deleted")).json()["NumberOfPages"] == 0
    assert_error(api.get(url("/lists/{list}/active"), params={"pagesize": 5}), 400, 801)
    assert_error(api.get(url("/lists/{list}/active"), params={"page": 0}), 400, 800)
    assert_error(api.get(url("/lists/{list}/active"), params={"orderfield": "age"}), 400, 802)


# -- segments (docs/providers/campaignmonitor.md#segments) -------------------------------------------------


def rules(*groups: list[str]) -> list[dict[str, Any]]:
    return [{"Rules": [{"RuleType": "[segments]", "Clause": clause} for clause in group]} for group in groups]


def test_rule_segments_and_active_counts(sb: CampaignMonitorSandbox, api: requests.Session, url: Any) -> None:
    make_segments_field(api, url)
    sb.add_subscriber("a@example.com", custom_fields={"Segments": ["vip"]})
    sb.add_subscriber("b@example.com", custom_fields={"Segments": ["vip", "beta"]})
    sb.add_subscriber("c@example.com", custom_fields={"Segments": ["beta"]})
    sb.add_subscriber("d@example.com")
    sb.add_subscriber("e@example.com", "Unsubscribed", custom_fields={"Segments": ["vip"]})
    create = url("/segments/{list}")
    resp = api.post(create, json={"Title": "VIP", "RuleGroups": rules(["EQUALS vip"])})
    assert resp.status_code == 201 and re.fullmatch(r"[0-9a-f]{32}", resp.json())
    vip = resp.json()
    details = api.get(f"{sb.api_base_url}/segments/{vip}.json").json()
    assert details == {
        "ActiveSubscribers": 2,
        "RuleGroups": rules(["EQUALS vip"]),
        "ListID": sb.list_id,
        "SegmentID": vip,
        "Title": "VIP",
    }

    def count(groups: list[dict[str, Any]], title: str) -> int:
        seg_id = api.post(create, json={"Title": title, "RuleGroups": groups}).json()
        return int(api.get(f"{sb.api_base_url}/segments/{seg_id}.json").json()["ActiveSubscribers"])

    assert count(rules(["EQUALS vip", "EQUALS beta"]), "vip or beta") == 3  # OR inside a group
    assert count(rules(["EQUALS vip"], ["EQUALS beta"]), "vip and beta") == 1  # AND across groups
    assert count(rules(["NOT_EQUALS vip"]), "not vip") == 2
    assert count(rules(["PROVIDED"]), "any") == 3
    assert count(rules(["NOT_PROVIDED"]), "none") == 1
    assert [s["Title"] for s in api.get(url("/lists/{list}/segments")).json()][:2] == ["VIP", "vip or beta"]
    assert api.get(url("/lists/{list}/segments")).json()[0] == {"ListID": sb.list_id, "SegmentID": vip, "Title": "VIP"}
    members = api.get(f"{sb.api_base_url}/segments/{vip}/active.json", params={"pagesize": 10}).json()
    assert [r["EmailAddress"] for r in members["Results"]] == ["a@example.com", "b@example.com"]
    import_rows(api, url, [row("d@example.com", CustomFields=[seg("vip")])]).raise_for_status()
    assert api.get(f"{sb.api_base_url}/segments/{vip}.json").json()["ActiveSubscribers"] == 3  # computed now
    assert sb.summary()["segments field options"] == {"vip": 4, "beta": 2, "churn": 0}
    assert sb.summary()["rule segments"][0] == "VIP"


def test_segment_errors_update_rules_and_delete(sb: CampaignMonitorSandbox, api: requests.Session, url: Any) -> None:
    make_segments_field(api, url)
    sb.add_subscriber("a@example.com", custom_fields={"Segments": ["beta"]})
    create = url("/segments/{list}")
    assert_error(api.post(create, json={"Title": "", "RuleGroups": rules(["EQUALS vip"])}), 400, 273)
    vip = api.post(create, json={"Title": "VIP", "RuleGroups": rules(["EQUALS vip"])}).json()
    assert_error(api.post(create, json={"Title": "vip", "RuleGroups": rules(["EQUALS vip"])}), 400, 275)
    bad_key = {"Title": "X", "RuleGroups": [{"Rules": [{"RuleType": "[nope]", "Clause": "EQUALS vip"}]}]}
    body = assert_error(api.post(create, json=bad_key), 400, 277, "Invalid Segment Rules")
    assert body["ResultData"]["RuleResults"][0]["RuleType"] == "[nope]"
    assert_error(api.post(create, json={"Title": "X", "RuleGroups": rules(["CONTAINS vip"])}), 400, 277)
    assert_error(api.post(create, json={"Title": "X", "RuleGroups": rules(["EQUALS gold"])}), 400, 277)
    assert_error(api.post(create, json={"Title": "X", "RuleGroups": rules(["EQUALS"])}), 400, 277)
    assert_error(api.post(sb.api_base_url + "/segments/" + "0" * 32 + ".json", json={"Title": "X"}), 400, 101)
    segment = f"{sb.api_base_url}/segments/{vip}"
    assert api.put(segment + ".json", json={"Title": "Beta", "RuleGroups": rules(["EQUALS beta"])}).status_code == 200
    assert api.get(segment + ".json").json()["ActiveSubscribers"] == 1
    assert (
        api.post(
            segment + "/rules.json", json={"Rules": [{"RuleType": "[segments]", "Clause": "EQUALS vip"}]}
        ).status_code
        == 201
    )
    assert api.get(segment + ".json").json()["ActiveSubscribers"] == 0  # beta AND vip
    assert api.delete(segment + "/rules.json").status_code == 200
    assert api.get(segment + ".json").json()["RuleGroups"] == []
    assert api.delete(segment + ".json").status_code == 200
    assert_error(api.get(segment + ".json"), 400, 271, "Invalid SegmentID")
    assert_error(api.get(segment + "/active.json"), 400, 271)


# -- OAuth (docs/providers/campaignmonitor.md#oauth2-web-server-flow) ------------------------------------


def test_oauth_code_refresh_expiry_and_revocation(sb: CampaignMonitorSandbox, url: Any) -> None:
    redirect = "http://127.0.0.1:9999/callback"
    resp = requests.get(
        sb.base_url + "/oauth",
        allow_redirects=False,
        params={
            "type": "web_server",
            "client_id": "123",
            "redirect_uri": redirect,
            "scope": "ImportSubscribers,ManageLists",
            "state": "xyz",
        },
    )
    assert resp.status_code == 302
    location = urlsplit(resp.headers["Location"])
    query = parse_qs(location.query)
    assert f"{location.scheme}://{location.netloc}{location.path}" == redirect and query["state"] == ["xyz"]
    token_url = sb.base_url + "/oauth/token"
    form = {
        "grant_type": "authorization_code",
        "client_id": "123",
        "client_secret": "s",
        "redirect_uri": redirect,
        "code": query["code"][0],
    }
    assert requests.post(token_url, data={**form, "client_secret": ""}).status_code == 400
    tokens = requests.post(token_url, data=form).json()
    assert set(tokens) == {"access_token", "expires_in", "refresh_token"} and tokens["expires_in"] == 1209600
    reused = requests.post(token_url, data=form)
    assert reused.status_code == 400 and reused.json() == {
        "error": "invalid_grant",
        "error_description": "Specified code was invalid or expired",
    }
    clients = url("/clients")
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert requests.get(clients, headers=bearer).status_code == 200
    assert_error(requests.get(clients, headers={"Authorization": "Bearer nope"}), 401, 120, "Invalid OAuth Token")
    sb.expire_tokens()
    assert_error(requests.get(clients, headers=bearer), 401, 121, "Expired OAuth Token")
    refreshed = requests.post(token_url, data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    fresh = refreshed.json()
    assert refreshed.status_code == 200 and fresh["access_token"] != tokens["access_token"]
    assert (
        requests.post(token_url, data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}).json()[
            "error"
        ]
        == "invalid_grant"
    )  # the old refresh token is spent
    new_bearer = {"Authorization": f"Bearer {fresh['access_token']}"}
    assert requests.get(clients, headers=new_bearer).status_code == 200
    assert_error(requests.get(clients, headers=bearer), 401, 121)
    sb.revoke_key()
    assert_error(requests.get(clients, headers=new_bearer), 401, 122, "Revoked OAuth Token")
    assert (
        requests.post(
            token_url, data={"grant_type": "refresh_token", "refresh_token": fresh["refresh_token"]}
        ).status_code
        == 400
    )


# -- faults, latency, transport ---------------------------------------------------------------------------


def test_faults_are_seeded_and_leave_state_alone() -> None:
    def run() -> tuple[list[int], int]:
        with CampaignMonitorSandbox(seed=3, fail_rate=0.3) as sandbox, requests.Session() as session:
            session.auth = (sandbox.api_key, "x")
            target = f"{sandbox.api_base_url}/subscribers/{sandbox.list_id}/import.json"
            codes = []
            for i in range(200):
                resp = session.post(target, json={"Subscribers": [row(f"u{i}@example.com")], "Resubscribe": False})
                codes.append(resp.status_code)
                if resp.status_code != 201:
                    body = resp.json()
                    assert body["Code"] == resp.status_code
                    if resp.status_code == 429:
                        assert body["Message"] == "Rate limit exceeded"
                    if resp.status_code == 500:
                        assert body["Message"] == "Sorry, we've run into a problem"
            return codes, sandbox.summary()["subscribers"].get("Active", 0)

    codes, active = run()
    failures = [c for c in codes if c != 201]
    assert 30 <= len(failures) <= 95 and set(failures) == {429, 500, 503}
    assert active == codes.count(201)  # a failed call never wrote
    assert run()[0] == codes  # same seed, same fault sequence


def test_latency_concurrency_and_control_api_exemption(
    sb: CampaignMonitorSandbox, api: requests.Session, url: Any
) -> None:
    sb.set_faults(latency_ms=300)
    start = threading.Barrier(10)
    results: list[int] = []

    def call() -> None:
        start.wait()
        results.append(requests.get(url("/clients"), auth=(sb.api_key, "x")).status_code)

    threads = [threading.Thread(target=call) for _ in range(10)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * 10  # up to the cap of calls in flight (10), every call is answered
    assert sb.max_in_flight >= 6 and time.perf_counter() - started < 2.5
    started = time.perf_counter()
    requests.get(sb.base_url + "/_sandbox/summary")
    assert time.perf_counter() - started < 0.3
    sb.set_faults(latency_ms=0, fail_rate=1.0, status_codes=(503,))
    assert_error(api.get(url("/clients")), 503, 503)
    assert requests.get(sb.base_url + "/_sandbox/state").status_code == 200  # never faulted
    with pytest.raises(ValueError):
        sb.set_faults(status_codes=(418,))


def test_routing_errors_pretty_and_keep_alive(sb: CampaignMonitorSandbox, api: requests.Session, url: Any) -> None:
    assert_error(api.get(sb.api_base_url + "/nothing.json"), 404, 404, "Not found")
    assert_error(api.get(url("/lists/{list}")[:-5] + ".xml"), 404, 404)
    assert_error(requests.get(sb.base_url + "/elsewhere"), 404, 404)
    wrong = api.delete(url("/clients"))
    assert wrong.status_code == 405 and wrong.headers["Allow"] == "GET"
    assert "\n" in api.get(url("/clients"), params={"pretty": "true"}).text
    for _ in range(3):
        resp = api.get(url("/clients"))
    api.post(url("/subscribers/{list}"), json=row("bad@"))
    verify = api.merge_environment_settings(sb.base_url, {}, None, None, None)["verify"]
    pool = api.get_adapter(sb.base_url).get_connection_with_tls_context(resp.request, verify=verify)
    assert pool.num_connections == 1  # errors, empty 200s and JSON all keep the connection alive


# -- test API and Python hooks ----------------------------------------------------------------------------


def test_control_api(sb: CampaignMonitorSandbox, api: requests.Session, url: Any) -> None:
    make_segments_field(api, url)
    base = sb.base_url + "/_sandbox"
    seeded = requests.post(
        base + "/subscribers",
        json={"email": "a@example.com", "state": "Bounced", "name": "A", "custom_fields": {"Segments": ["vip"]}},
    )
    assert seeded.status_code == 200 and seeded.json()["State"] == "Bounced"
    assert requests.post(base + "/subscribers", json={"email": "b@example.com", "state": "Gone"}).status_code == 400
    assert (
        requests.post(
            base + "/subscribers", json={"email": "b@example.com", "custom_fields": {"Segments": ["gold"]}}
        ).status_code
        == 400
    )
    assert requests.post(base + "/suppress", json={"email": "s@example.com"}).status_code == 204
    state = requests.get(base + "/state").json()
    lst = state["lists"][sb.list_id]
    assert lst["subscribers"]["a@example.com"] == {
        "EmailAddress": "a@example.com",
        "Name": "A",
        "State": "Bounced",
        "ConsentToTrack": "No",
        "CustomFields": {"Segments": ["vip"]},
    }
    assert lst["custom_fields"]["[segments]"]["DataType"] == "MultiSelectMany"
    assert {"details", "custom_fields", "subscribers", "segments", "deleted"} <= lst.keys()
    assert state["suppression_list"] == ["s@example.com"] and state["revoked"] is False
    assert requests.get(base + "/summary").json()["subscribers"] == {"Bounced": 1}
    faults = requests.post(base + "/faults", json={"fail_rate": 0.0, "latency_ms": 1}).json()
    assert faults == {"fail_rate": 0.0, "latency_ms": 1, "status_codes": [429, 500, 503]} and sb.latency_ms == 1
    assert requests.post(base + "/faults", json={"status_codes": [200]}).status_code == 400
    assert requests.post(base + "/expire-tokens").status_code == 204
    assert requests.post(base + "/revoke").status_code == 204
    assert api.get(url("/clients")).status_code == 401
    assert requests.post(base + "/reset").status_code == 204
    assert api.get(url("/clients")).status_code == 200 and sb.latency_ms == 0
    assert sb.summary() == {"list": sb.list_id, "subscribers": {}, "segments field options": {}, "rule segments": []}
    assert ("GET", "/api/v3.3/clients.json") in sb.requests_log


def test_main_as_module_in_a_subprocess() -> None:
    cmd = [sys.executable, "-m", "segport_campaignmonitor.sandbox", "--port", "0", "--seed", "1"]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        lines = dict(proc.stdout.readline().rstrip("\n").split(": ", 1) for _ in range(4))
        try:
            assert set(lines) == {"base_url", "api_base_url", "api_key", "list_id"}
            assert lines["api_base_url"] == lines["base_url"] + "/api/v3.3"
            resp = requests.get(f"{lines['api_base_url']}/lists/{lines['list_id']}.json", auth=(lines["api_key"], "x"))
            assert resp.status_code == 200 and resp.json()["ListID"] == lines["list_id"]
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(10) == 0
    assert lines["api_key"] == CampaignMonitorSandbox(seed=1).api_key


# -- a cap of calls in flight per credential, as a client must expect a 429 ---------------------------


def _concurrent_gets(sb: CampaignMonitorSandbox, url: str, calls: int) -> list[requests.Response]:
    """Send ``calls`` GETs at once (each held by the sandbox's latency); return the answers."""
    start = threading.Barrier(calls)
    results: list[requests.Response] = []

    def call() -> None:
        start.wait()
        results.append(requests.get(url, auth=(sb.api_key, "x")))

    threads = [threading.Thread(target=call) for _ in range(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_more_than_ten_calls_in_flight_get_429(sb: CampaignMonitorSandbox, url: Any) -> None:
    assert sb.max_connections == 10
    sb.set_faults(latency_ms=800)
    results = _concurrent_gets(sb, url("/clients"), 13)
    assert sorted(r.status_code for r in results) == [200] * 10 + [429] * 3
    assert_error(next(r for r in results if r.status_code == 429), 429, 429, "Rate limit exceeded")
    assert sb.fault_counts().get("over-limit") == 3


def test_the_cap_is_configurable(url: Any) -> None:
    with CampaignMonitorSandbox(seed=7, max_connections=2) as sandbox:
        sandbox.set_faults(latency_ms=800)
        client_url = sandbox.api_base_url + "/clients.json"
        assert sorted(r.status_code for r in _concurrent_gets(sandbox, client_url, 4)) == [200, 200, 429, 429]
