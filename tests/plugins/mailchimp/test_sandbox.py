"""The Mailchimp sandbox, driven over HTTP exactly as an exporter would.

The platform facts it follows: docs/providers/mailchimp.md.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import io
import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import threading
import time
import types
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

PLUGIN_DIR = Path(__file__).resolve().parents[3] / "plugins" / "mailchimp"


def _load_sandbox() -> tuple[types.ModuleType, bool]:
    """``segport_mailchimp.sandbox`` and whether the real package is importable (else: loaded from source)."""
    try:
        return importlib.import_module("segport_mailchimp.sandbox"), True
    except ImportError:
        pass
    # Package not installed yet: import the two modules through a bare package that skips its __init__,
    # then take the stub out again so other tests still see the real (missing) package.
    stub = types.ModuleType("segport_mailchimp")
    stub.__path__ = [str(PLUGIN_DIR)]
    sys.modules["segport_mailchimp"] = stub
    try:
        return importlib.import_module("segport_mailchimp.sandbox"), False
    finally:
        modules = (
            "sandbox",
            "sandbox.server",
            "sandbox.state",
            "sandbox.batches",
            "sandbox.addresses",
            "sandbox.fields",
        )
        for name in ("segport_mailchimp", *(f"segport_mailchimp.{m}" for m in modules)):
            sys.modules.pop(name, None)


sandbox_module, PACKAGE_IMPORTABLE = _load_sandbox()
MailchimpSandbox = sandbox_module.MailchimpSandbox

PROBLEM_KEYS = {"type", "title", "status", "detail", "instance"}


def md5(email: str) -> str:
    return hashlib.md5(email.lower().encode()).hexdigest()


def assert_problem(resp: requests.Response, status: int, title: str, detail: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["Content-Type"].startswith("application/problem+json")
    body: dict[str, Any] = resp.json()
    assert PROBLEM_KEYS <= body.keys()
    assert (body["status"], body["title"]) == (status, title)
    if detail is not None:
        assert body["detail"] == detail
    return body


@pytest.fixture
def sb() -> Iterator[Any]:
    sandbox = MailchimpSandbox(seed=7)
    sandbox.start()
    yield sandbox
    sandbox.stop()


@pytest.fixture
def api(sb: Any) -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.auth = ("anystring", sb.api_key)
        yield session


@pytest.fixture
def lst(sb: Any) -> str:
    """The audience URL."""
    return f"{sb.api_base_url}/lists/{sb.audience_id}"


def batch(api: requests.Session, lst: str, members: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    resp = api.post(lst, json={"members": members, **extra})
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


def sub(email: str, status: str = "subscribed", **fields: Any) -> dict[str, Any]:
    return {"email_address": email, "status": status, **fields}


# -- identity, auth, lists ------------------------------------------------------------------------


def test_identity_is_seeded_and_demo_config_points_at_the_server(sb: Any) -> None:
    assert re.fullmatch(r"[0-9a-f]{32}-us1", sb.api_key)
    assert re.fullmatch(r"[0-9a-f]{10}", sb.audience_id)
    twin = MailchimpSandbox(seed=7)
    assert (twin.api_key, twin.audience_id) == (sb.api_key, sb.audience_id)
    assert MailchimpSandbox(seed=8).api_key != sb.api_key
    assert MailchimpSandbox(api_key="0" * 32 + "-us1").api_key == "0" * 32 + "-us1"
    assert sb.api_base_url == sb.base_url + "/3.0"
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", sb.base_url)
    assert sb.demo_connection() == {"api_key": sb.api_key, "api_base_url": sb.api_base_url}
    assert sb.demo_export_options() == {"audience_id": sb.audience_id}


def test_ping_and_account_root(sb: Any, api: requests.Session) -> None:
    resp = api.get(sb.api_base_url + "/ping")
    assert resp.json() == {"health_status": "Everything's Chimpy!"}
    assert resp.headers["Content-Type"].startswith("application/json")
    account = api.get(sb.api_base_url + "/").json()
    assert {"account_id", "account_name", "email"} <= account.keys()


def test_auth_missing_wrong_and_revoked(sb: Any, api: requests.Session) -> None:
    url = sb.api_base_url + "/ping"
    assert_problem(requests.get(url), 401, "API Key Missing")
    invalid = "Your API key may be invalid, or you've attempted to access the wrong datacenter."
    assert_problem(requests.get(url, auth=("user", "f" * 32 + "-us1")), 401, "API Key Invalid", invalid)
    assert_problem(requests.get(url, headers={"Authorization": "Bearer nope"}), 401, "API Key Invalid")
    assert requests.get(url, auth=("whoever", sb.api_key)).status_code == 200  # any username
    sb.revoke_key()
    assert_problem(api.get(url), 401, "API Key Invalid", invalid)


def test_lists_and_unknown_or_deleted_audience(sb: Any, api: requests.Session, lst: str) -> None:
    lists = api.get(sb.api_base_url + "/lists", params={"count": 10, "offset": 0}).json()
    assert lists["total_items"] == 1
    audience = lists["lists"][0]
    assert audience["id"] == sb.audience_id and audience["name"] == "Sandbox audience"
    assert audience["double_optin"] is False and "member_count" in audience["stats"] and "web_id" in audience
    assert api.get(lst).json()["id"] == sb.audience_id
    missing = "The requested resource could not be found."
    assert_problem(api.get(sb.api_base_url + "/lists/0000000000"), 404, "Resource Not Found", missing)
    sb.delete_list()
    assert_problem(api.get(lst), 404, "Resource Not Found", missing)
    assert_problem(api.post(lst, json={"members": []}), 404, "Resource Not Found")
    assert api.get(sb.api_base_url + "/lists").json() == {
        "lists": [],
        "total_items": 0,
        "constraints": {"may_create": True, "max_instances": 1, "current_total_instances": 0},
        "_links": [],
    }


def test_lists_page_and_keep_only_the_fields_asked(sb: Any, api: requests.Session) -> None:
    """``GET /lists`` pages with count/offset, reports total_items and honours fields, as Mailchimp does."""
    sb.add_member("ada@segport-test.net")
    sb.add_member("bob@segport-test.net")
    sb.add_member("cy@segport-test.net", status="unsubscribed")
    whole = api.get(sb.api_base_url + "/lists").json()
    assert set(whole) == {"lists", "total_items", "constraints", "_links"}
    assert whole["constraints"] == {"may_create": False, "max_instances": 1, "current_total_instances": 1}
    fields = "lists.id,lists.name,lists.stats.member_count,total_items"
    first = api.get(sb.api_base_url + "/lists", params={"count": 1, "offset": 0, "fields": fields}).json()
    # member_count: the subscribed members only (docs/providers/mailchimp.md#listing-audiences)
    assert first == {
        "lists": [{"id": sb.audience_id, "name": "Sandbox audience", "stats": {"member_count": 2}}],
        "total_items": 1,
    }
    after = api.get(sb.api_base_url + "/lists", params={"count": 1, "offset": 1, "fields": fields}).json()
    assert after == {"lists": [], "total_items": 1}
    trimmed = api.get(sb.api_base_url + "/lists", params={"exclude_fields": "lists,constraints,_links"}).json()
    assert trimmed == {"total_items": 1}


def test_merge_fields_read_and_create(api: requests.Session, lst: str, sb: Any) -> None:
    page = api.get(lst + "/merge-fields", params={"count": 1000}).json()
    assert page["list_id"] == sb.audience_id and page["total_items"] == 4
    assert [(f["tag"], f["type"]) for f in page["merge_fields"]] == [
        ("FNAME", "text"),
        ("LNAME", "text"),
        ("ADDRESS", "address"),
        ("PHONE", "phone"),
    ]
    keys = {
        "merge_id",
        "tag",
        "name",
        "type",
        "required",
        "default_value",
        "public",
        "display_order",
        "options",
        "help_text",
        "list_id",
    }
    assert keys <= page["merge_fields"][0].keys()
    assert [
        f["tag"] for f in api.get(lst + "/merge-fields", params={"count": 2, "offset": 1}).json()["merge_fields"]
    ] == ["LNAME", "ADDRESS"]
    created = api.post(lst + "/merge-fields", json={"name": "Plan", "type": "text"}).json()
    assert created["tag"] == "PLAN" and created["list_id"] == sb.audience_id
    long = api.post(lst + "/merge-fields", json={"name": "Customer lifetime value", "type": "number"}).json()
    assert long["tag"] == "CUSTOMERLI"  # upper-cased, 10 chars
    assert_problem(
        api.post(lst + "/merge-fields", json={"name": "Plan again", "type": "text", "tag": "PLAN"}),
        400,
        "Invalid Resource",
    )
    bad = assert_problem(api.post(lst + "/merge-fields", json={"name": "X", "type": "colour"}), 400, "Invalid Resource")
    assert bad["errors"][0]["field"] == "type"
    assert sb.summary()["merge_fields"] == ["FNAME", "LNAME", "ADDRESS", "PHONE", "PLAN", "CUSTOMERLI"]


# -- batch subscribe/update (docs/providers/mailchimp.md#batch-subscribe-request) ---------------------------


def test_batch_creates_members_with_fields_and_tags(api: requests.Session, lst: str, sb: Any) -> None:
    out = batch(api, lst, [sub("Ada@Segport-Test.net", merge_fields={"FNAME": "Ada", "LNAME": 1815}, tags=["seg:vip"])])
    assert (out["total_created"], out["total_updated"], out["error_count"]) == (1, 0, 0)
    member = out["new_members"][0]
    assert member["id"] == md5("ada@segport-test.net")
    assert member["status"] == "subscribed" and member["merge_fields"]["FNAME"] == "Ada"
    assert member["merge_fields"]["LNAME"] == "1815" and member["merge_fields"]["PHONE"] == ""
    assert [t["name"] for t in member["tags"]] == ["seg:vip"] and member["tags_count"] == 1
    assert {"unique_email_id", "list_id", "last_changed", "email_address"} <= member.keys()
    assert sb.summary() == {
        "audience": sb.audience_id,
        "members": {"subscribed": 1},
        "tags": {"seg:vip": 1},
        "merge_fields": ["FNAME", "LNAME", "ADDRESS", "PHONE"],
    }


def test_batch_reports_every_kind_of_member_error(api: requests.Session, lst: str, sb: Any) -> None:
    sb.add_member("old@segport-test.net", "subscribed")
    sb.add_member("gone@segport-test.net", "unsubscribed")
    sb.add_member("bounced@segport-test.net", "cleaned")
    sb.mark_compliance("flagged@segport-test.net")
    sb.mark_forgotten("erased@segport-test.net")
    out = batch(
        api,
        lst,
        [
            sub("not-an-email"),
            sub("ada@example.invalid"),
            sub("fakeperson@segport-test.net"),
            sub("flagged@segport-test.net"),
            sub("erased@segport-test.net", "pending"),
            sub("old@segport-test.net"),
            sub("new@segport-test.net", merge_fields={"NOPE": "x"}),
            sub("ok@segport-test.net"),
            sub("ok@segport-test.net"),
        ],
    )
    errors = {e["email_address"]: e for e in out["errors"]}
    assert out["total_created"] == 1 and out["error_count"] == len(out["errors"]) == 8
    for email in ("ada@example.invalid", "fakeperson@segport-test.net"):
        assert errors[email]["error"] == f"{email} looks fake or invalid, please enter a real email address."
        assert errors[email]["error_code"] == "ERROR_GENERIC"
    assert errors["not-an-email"]["error"] == "Please provide a valid email address."
    assert errors["not-an-email"]["error_code"] == "ERROR_GENERIC"
    assert errors["flagged@segport-test.net"]["error"] == (
        "flagged@segport-test.net is in a compliance state due to unsubscribe, bounce, or compliance review "
        "and cannot be subscribed."
    )
    assert errors["erased@segport-test.net"]["error"] == (
        "erased@segport-test.net was permanently deleted and cannot be re-imported. "
        "The contact must re-subscribe to get back on the list."
    )
    assert errors["old@segport-test.net"] == {
        "email_address": "old@segport-test.net",
        "error_code": "ERROR_CONTACT_EXISTS",
        "field": "",
        "field_message": "",
        "error": "old@segport-test.net is already a list member, do you want to update? "
        "please provide update_existing:true in the request body",
    }
    assert errors["new@segport-test.net"]["error"] == "Your merge fields were invalid."
    assert errors["new@segport-test.net"]["field"] == "NOPE"
    assert errors["ok@segport-test.net"]["error_code"] == "ERROR_GENERIC"  # duplicate inside one request
    assert [m["email_address"] for m in out["new_members"]] == ["ok@segport-test.net"]
    # compliance through update_existing: unsubscribed/cleaned -> subscribed refused
    out = batch(
        api, lst, [sub("gone@segport-test.net"), sub("bounced@segport-test.net", "pending")], update_existing=True
    )
    assert out["error_count"] == 2 and all("compliance state" in e["error"] for e in out["errors"])
    # ... but an unsubscribed contact may be set to pending (re-confirmation email)
    # (docs/providers/mailchimp.md#compliance-state)
    out = batch(api, lst, [sub("gone@segport-test.net", "pending")], update_existing=True)
    assert out["total_updated"] == 1 and out["updated_members"][0]["status"] == "pending"
    state = sb.state()["lists"][sb.audience_id]["members"]
    assert state["old@segport-test.net"]["status"] == "subscribed" and "flagged@segport-test.net" not in state


def test_batch_required_merge_field_and_skip_merge_validation(api: requests.Session, lst: str) -> None:
    api.post(lst + "/merge-fields", json={"name": "Plan", "type": "text", "required": True}).raise_for_status()
    out = batch(api, lst, [sub("a@segport-test.net"), sub("b@segport-test.net", merge_fields={"PLAN": "pro"})])
    assert out["total_created"] == 1
    assert out["errors"][0]["field"] == "PLAN" and out["errors"][0]["error"] == "Your merge fields were invalid."
    resp = api.post(lst, params={"skip_merge_validation": "true"}, json={"members": [sub("a@segport-test.net")]})
    assert resp.json()["total_created"] == 1


def test_batch_update_existing_false_vs_true(api: requests.Session, lst: str, sb: Any) -> None:
    batch(api, lst, [sub("ada@segport-test.net", merge_fields={"FNAME": "Ada"}, tags=["a"])])
    out = batch(api, lst, [sub("ada@segport-test.net", "unsubscribed", merge_fields={"FNAME": "Augusta"})])
    assert out["errors"][0]["error_code"] == "ERROR_CONTACT_EXISTS"
    assert sb.state()["lists"][sb.audience_id]["members"]["ada@segport-test.net"]["merge_fields"] == {"FNAME": "Ada"}
    out = batch(
        api,
        lst,
        [sub("ada@segport-test.net", "unsubscribed", merge_fields={"FNAME": "Augusta"}, tags=["b"])],
        update_existing=True,
    )
    member = out["updated_members"][0]
    assert out["total_updated"] == 1 and out["total_created"] == 0
    assert member["status"] == "unsubscribed" and member["merge_fields"]["FNAME"] == "Augusta"
    assert sorted(t["name"] for t in member["tags"]) == ["a", "b"]
    out = batch(
        api, lst, [sub("ada@segport-test.net", "unsubscribed", tags=["c"])], update_existing=True, sync_tags=True
    )
    assert [t["name"] for t in out["updated_members"][0]["tags"]] == ["c"]


def test_batch_request_level_errors(api: requests.Session, lst: str) -> None:
    too_many = [sub(f"u{i}@segport-test.net") for i in range(501)]
    assert_problem(api.post(lst, json={"members": too_many}), 400, "Invalid Resource")
    body = assert_problem(
        api.post(lst, json={"members": [{"email_address": "a@segport-test.net"}]}), 400, "Invalid Resource"
    )
    assert body["errors"][0]["field"] == "members.item:0.status"
    assert_problem(
        api.post(lst, data="{not json", headers={"Content-Type": "application/json"}), 400, "JSON Parse Error"
    )
    assert len(batch(api, lst, too_many[:500])["new_members"]) == 500


def test_batch_skip_duplicate_check_keeps_first(api: requests.Session, lst: str) -> None:
    resp = api.post(
        lst,
        params={"skip_duplicate_check": "true"},
        json={"members": [sub("a@segport-test.net"), sub("A@segport-test.net", "unsubscribed")]},
    )
    out = resp.json()
    assert out["error_count"] == 0 and [m["status"] for m in out["new_members"]] == ["subscribed"]


# -- single members (docs/providers/mailchimp.md#members) ------------------------------------------------


def test_put_upsert_never_changes_status_without_status(api: requests.Session, lst: str, sb: Any) -> None:
    url = f"{lst}/members/{md5('ada@segport-test.net')}"
    body = assert_problem(api.put(url, json={"email_address": "ada@segport-test.net"}), 400, "Invalid Resource")
    assert body["errors"][0]["field"] == "status_if_new"
    created = api.put(
        url,
        json={
            "email_address": "ada@segport-test.net",
            "status_if_new": "transactional",
            "merge_fields": {"FNAME": "Ada"},
        },
    ).json()
    assert created["status"] == "transactional" and created["id"] == md5("ada@segport-test.net")
    sb.add_member("gone@segport-test.net", "unsubscribed", {"FNAME": "G"})
    gone = api.put(
        f"{lst}/members/gone@segport-test.net",  # raw email accepted in the path
        json={
            "email_address": "gone@segport-test.net",
            "status_if_new": "subscribed",
            "merge_fields": {"FNAME": "Gone", "LNAME": "Away"},
        },
    ).json()
    assert gone["status"] == "unsubscribed" and gone["merge_fields"]["LNAME"] == "Away"
    cleared = api.put(
        f"{lst}/members/gone@segport-test.net",
        json={"email_address": "gone@segport-test.net", "merge_fields": {"LNAME": ""}},
    ).json()
    assert cleared["merge_fields"]["LNAME"] == "" and cleared["status"] == "unsubscribed"
    assert_problem(
        api.put(
            f"{lst}/members/gone@segport-test.net",
            json={"email_address": "gone@segport-test.net", "status": "subscribed"},
        ),
        400,
        "Member In Compliance State",
        "gone@segport-test.net is in a compliance state due to unsubscribe, bounce, or compliance review "
        "and cannot be subscribed.",
    )
    sb.mark_forgotten("erased@segport-test.net")
    assert_problem(
        api.put(
            f"{lst}/members/erased@segport-test.net",
            json={"email_address": "erased@segport-test.net", "status_if_new": "pending"},
        ),
        400,
        "Forgotten Email Not Subscribed",
    )
    assert_problem(
        api.put(
            f"{lst}/members/fake1@segport-test.net",
            json={"email_address": "fake1@segport-test.net", "status_if_new": "subscribed"},
        ),
        400,
        "Invalid Resource",
        "fake1@segport-test.net looks fake or invalid, please enter a real email address.",
    )
    assert_problem(
        api.put(url, json={"email_address": "ada@segport-test.net", "merge_fields": {"BAD": "x"}}),
        400,
        "Invalid Resource",
        "Your merge fields were invalid.",
    )
    changed = api.put(url, json={"email_address": "ada@segport-test.net", "status": "subscribed"}).json()
    assert changed["status"] == "subscribed"


def test_post_patch_get_delete_and_list_members(api: requests.Session, lst: str, sb: Any) -> None:
    assert_problem(api.post(lst + "/members", json={"email_address": "a@segport-test.net"}), 400, "Invalid Resource")
    created = api.post(
        lst + "/members", json={"email_address": "a@segport-test.net", "status": "subscribed", "tags": ["t1"]}
    ).json()
    assert created["tags"][0]["name"] == "t1"
    assert_problem(
        api.post(lst + "/members", json={"email_address": "a@segport-test.net", "status": "subscribed"}),
        400,
        "Member Exists",
        "a@segport-test.net is already a list member. Use PUT to insert or update list members.",
    )
    member_url = f"{lst}/members/{md5('a@segport-test.net')}"
    assert_problem(
        api.patch(f"{lst}/members/{md5('nobody@segport-test.net')}", json={"status": "subscribed"}),
        404,
        "Resource Not Found",
    )
    patched = api.patch(member_url, json={"merge_fields": {"FNAME": "A"}}).json()
    assert patched["status"] == "subscribed" and patched["merge_fields"]["FNAME"] == "A"
    assert api.patch(member_url, json={"status": "unsubscribed"}).json()["status"] == "unsubscribed"
    assert api.get(member_url).json()["email_address"] == "a@segport-test.net"
    assert_problem(api.get(f"{lst}/members/{md5('nobody@segport-test.net')}"), 404, "Resource Not Found")
    for i in range(5):
        sb.add_member(f"m{i}@segport-test.net", "subscribed" if i % 2 else "cleaned")
    page = api.get(lst + "/members", params={"count": 2, "offset": 1}).json()
    assert page["total_items"] == 6 and [m["email_address"] for m in page["members"]] == [
        "m0@segport-test.net",
        "m1@segport-test.net",
    ]
    cleaned = api.get(lst + "/members", params={"status": "cleaned", "count": 1000}).json()
    assert cleaned["total_items"] == 3
    deleted = api.delete(member_url)
    assert deleted.status_code == 204 and deleted.content == b""
    assert api.get(member_url).json()["status"] == "archived"
    assert sb.summary()["members"] == {"subscribed": 2, "cleaned": 3, "archived": 1}


# -- tags and static segments (docs/providers/mailchimp.md#tags) ----------------------------------------


def test_member_tags_endpoint_adds_and_removes(api: requests.Session, lst: str, sb: Any) -> None:
    sb.add_member("a@segport-test.net", tags=["old"])
    url = f"{lst}/members/{md5('a@segport-test.net')}/tags"
    resp = api.post(
        url,
        json={
            "tags": [{"name": "seg:vip", "status": "active"}, {"name": "old", "status": "inactive"}],
            "is_syncing": True,
        },
    )
    assert resp.status_code == 204 and resp.content == b""
    tags = api.get(url).json()
    assert tags["total_items"] == 1 and tags["tags"][0]["name"] == "seg:vip"
    assert {"id", "name", "date_added"} <= tags["tags"][0].keys()
    assert_problem(
        api.post(f"{lst}/members/{md5('x@segport-test.net')}/tags", json={"tags": [{"name": "a", "status": "active"}]}),
        404,
        "Resource Not Found",
    )
    assert_problem(api.post(url, json={"tags": [{"name": "a", "status": "maybe"}]}), 400, "Invalid Resource")
    assert sb.summary()["tags"] == {"old": 0, "seg:vip": 1}


def test_static_segments_and_bulk_membership(api: requests.Session, lst: str, sb: Any) -> None:
    sb.add_member("a@segport-test.net")
    sb.add_member("b@segport-test.net")
    seg = api.post(
        lst + "/segments", json={"name": "seg:vip", "static_segment": ["a@segport-test.net", "z@segport-test.net"]}
    )
    assert seg.status_code == 200
    segment = seg.json()
    assert isinstance(segment["id"], int) and segment["type"] == "static" and segment["member_count"] == 1
    assert {"name", "created_at", "updated_at", "list_id"} <= segment.keys()
    assert_problem(
        api.post(lst + "/segments", json={"name": "seg:vip", "static_segment": []}),
        400,
        "Invalid Resource",
        "Tag already exists.",
    )
    url = f"{lst}/segments/{segment['id']}"
    out = api.post(
        url,
        json={
            "members_to_add": ["b@segport-test.net", "nobody@segport-test.net"],
            "members_to_remove": ["a@segport-test.net", "ghost@segport-test.net"],
        },
    ).json()
    assert (out["total_added"], out["total_removed"], out["error_count"]) == (1, 1, 1)
    assert out["members_added"][0]["email_address"] == "b@segport-test.net"
    assert out["members_removed"][0]["email_address"] == "a@segport-test.net"
    assert out["errors"][0]["email_addresses"] == ["nobody@segport-test.net"] and out["errors"][0]["error"]
    assert_problem(
        api.post(url, json={"members_to_add": [f"u{i}@segport-test.net" for i in range(501)]}), 400, "Invalid Resource"
    )
    assert_problem(api.post(f"{lst}/segments/999999", json={"members_to_add": []}), 404, "Resource Not Found")
    api.post(
        f"{lst}/members/{md5('a@segport-test.net')}/tags", json={"tags": [{"name": "seg:old", "status": "active"}]}
    )
    page = api.get(lst + "/segments", params={"type": "static", "count": 1000, "offset": 0}).json()
    assert page["list_id"] == sb.audience_id and page["total_items"] == 2
    assert {s["name"]: s["member_count"] for s in page["segments"]} == {"seg:vip": 1, "seg:old": 1}
    found = api.get(lst + "/tag-search", params={"name": "seg:"}).json()
    assert found["total_items"] == 2 and {t["name"] for t in found["tags"]} == {"seg:vip", "seg:old"}
    assert api.get(lst + "/tag-search", params={"name": "seg:v"}).json()["tags"] == [
        {"id": segment["id"], "name": "seg:vip"}
    ]
    assert sb.state()["lists"][sb.audience_id]["members"]["b@segport-test.net"]["tags"] == ["seg:vip"]


# -- transport behaviour ----------------------------------------------------------------------------


def test_routing_errors_and_keep_alive(sb: Any, api: requests.Session, lst: str) -> None:
    assert_problem(api.get(sb.api_base_url + "/nothing-here"), 404, "Resource Not Found")
    resp = api.delete(sb.api_base_url + "/ping")
    assert_problem(resp, 405, "Method Not Allowed")
    assert resp.headers["Allow"] == "GET"
    api.post(f"{lst}/members/{md5('x@segport-test.net')}/tags", json={"tags": []})
    for _ in range(3):
        resp = api.get(sb.api_base_url + "/ping")
    verify = api.merge_environment_settings(sb.base_url, {}, None, None, None)["verify"]
    pool = api.get_adapter(sb.base_url).get_connection_with_tls_context(resp.request, verify=verify)
    assert pool.num_connections == 1  # errors, 204s and 200s all keep the connection alive


def test_more_than_ten_concurrent_requests_get_429(sb: Any) -> None:
    sb.set_faults(latency_ms=500)
    start = threading.Barrier(15)
    results: list[requests.Response] = []

    def call() -> None:
        start.wait()
        results.append(requests.get(sb.api_base_url + "/ping", auth=("u", sb.api_key)))

    threads = [threading.Thread(target=call) for _ in range(15)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(r.status_code for r in results)
    assert codes == [200] * 10 + [429] * 5
    body = assert_problem(next(r for r in results if r.status_code == 429), 429, "Too Many Requests")
    assert "10 simultaneous connections" in body["detail"]
    assert sb.max_in_flight > 10


def test_faults_are_seeded_and_leave_state_alone() -> None:
    def run() -> tuple[list[int], int]:
        with MailchimpSandbox(seed=3, fail_rate=0.3) as sandbox, requests.Session() as session:
            session.auth = ("u", sandbox.api_key)
            lst = f"{sandbox.api_base_url}/lists/{sandbox.audience_id}"
            codes = []
            for i in range(200):
                resp = session.post(lst, json={"members": [sub(f"u{i}@segport-test.net")]})
                codes.append(resp.status_code)
                if resp.status_code != 200:
                    assert_problem(resp, resp.status_code, resp.json()["title"])
            return codes, sandbox.summary()["members"].get("subscribed", 0)

    codes, members = run()
    failures = [c for c in codes if c != 200]
    assert 30 <= len(failures) <= 95 and set(failures) <= {429, 500, 503}
    assert members == codes.count(200)  # a failed call never wrote
    assert run()[0] == codes  # same seed, same fault sequence


def test_latency_forbidden_403_and_control_api_exemption(sb: Any, api: requests.Session) -> None:
    sb.set_faults(latency_ms=150)
    started = time.perf_counter()
    api.get(sb.api_base_url + "/ping")
    assert time.perf_counter() - started >= 0.15
    started = time.perf_counter()
    requests.get(sb.base_url + "/_sandbox/summary")
    assert time.perf_counter() - started < 0.15
    sb.set_faults(latency_ms=0, fail_rate=1.0, status_codes=(403,))
    resp = api.get(sb.api_base_url + "/ping")
    assert resp.status_code == 403 and resp.content == b""
    assert requests.get(sb.base_url + "/_sandbox/state").status_code == 200  # never faulted


# -- batch operations (docs/providers/mailchimp.md#batch-operations) --------------------------------


def put_op(lst_id: str, email: str, operation_id: str, **body: Any) -> dict[str, Any]:
    payload = {"email_address": email, "status_if_new": "subscribed", **body}
    path = f"/lists/{lst_id}/members/{md5(email)}"
    return {"method": "PUT", "path": path, "operation_id": operation_id, "params": {}, "body": json.dumps(payload)}


def wait_finished(sb: Any, batch_id: str, timeout: float = 10) -> dict[str, Any]:
    """Poll through the test API (no latency, no faults) until the batch is finished."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = {b["id"]: b for b in requests.get(sb.base_url + "/_sandbox/state").json()["batches"]}
        if found[batch_id]["status"] == "finished":
            return found[batch_id]
        time.sleep(0.01)
    raise AssertionError(f"batch {batch_id} did not finish")


def results(url: str) -> dict[str, tuple[int, Any]]:
    """Download without credentials; operation_id -> (status_code, decoded response)."""
    resp = requests.get(url)
    assert resp.status_code == 200 and resp.headers["Content-Type"] == "application/gzip"
    found: dict[str, tuple[int, Any]] = {}
    with tarfile.open(fileobj=io.BytesIO(resp.content), mode="r:gz") as tar:
        for entry in tar:
            handle = tar.extractfile(entry)
            assert handle is not None
            for item in json.loads(handle.read()):
                assert isinstance(item["response"], str)  # a JSON string (docs/providers/mailchimp.md#batch-results)
                found[item["operation_id"]] = (item["status_code"], json.loads(item["response"] or "null"))
    return found


def test_batch_operations_run_like_direct_calls_and_results_come_as_a_tar_gz(
    sb: Any, api: requests.Session, lst: str
) -> None:
    sb.add_member("gone@segport-test.net", "unsubscribed")
    aud = sb.audience_id
    operations = [
        put_op(aud, "new@segport-test.net", "new", merge_fields={"FNAME": "Nu"}),
        put_op(aud, "gone@segport-test.net", "gone", merge_fields={"FNAME": "Gone"}),
        put_op(aud, "fake@segport-test.net", "fake"),
        put_op("0000000000", "x@segport-test.net", "nolist"),
        {
            "method": "PUT",
            "path": f"/lists/{aud}/members/{md5('y@segport-test.net')}",
            "operation_id": "nojson",
            "body": "{",
        },
        {"method": "GET", "path": f"/lists/{aud}", "operation_id": "get", "params": {"fields": "id"}},
        {
            "method": "POST",
            "path": f"/lists/{aud}/members/{md5('new@segport-test.net')}/tags",
            "operation_id": "tag",
            "body": json.dumps({"tags": [{"name": "seg:vip", "status": "active"}]}),
        },
    ]
    resp = api.post(sb.api_base_url + "/batches", json={"operations": operations})
    assert resp.status_code == 200
    submitted = resp.json()
    assert submitted["status"] == "pending" and submitted["response_body_url"] == ""
    assert (submitted["total_operations"], submitted["finished_operations"]) == (7, 0)

    done = wait_finished(sb, submitted["id"])
    assert api.get(f"{sb.api_base_url}/batches/{submitted['id']}").json() == done
    assert (done["total_operations"], done["finished_operations"], done["errored_operations"]) == (7, 7, 3)
    assert done["completed_at"] and done["response_body_url"].startswith(sb.base_url + "/batch-results/")

    found = results(done["response_body_url"])
    assert found["new"][0] == 200 and found["new"][1]["merge_fields"]["FNAME"] == "Nu"
    assert found["gone"][0] == 200 and found["gone"][1]["status"] == "unsubscribed"  # PUT without status
    assert found["fake"][0] == 400
    assert (
        found["fake"][1]["detail"] == "fake@segport-test.net looks fake or invalid, please enter a real email address."
    )
    assert found["nolist"][0] == 404 and found["nolist"][1]["title"] == "Resource Not Found"
    assert found["nojson"][0] == 400 and found["nojson"][1]["title"] == "JSON Parse Error"
    assert found["get"][0] == 200 and found["get"][1]["id"] == aud
    assert found["tag"] == (204, None)
    state = sb.state()["lists"][aud]["members"]
    assert (
        state["new@segport-test.net"]["tags"] == ["seg:vip"]
        and state["gone@segport-test.net"]["status"] == "unsubscribed"
    )


def test_batch_results_url_refuses_credentials_and_wrong_signatures(sb: Any, api: requests.Session) -> None:
    op = put_op(sb.audience_id, "a@segport-test.net", "a")
    batch_id = api.post(sb.api_base_url + "/batches", json={"operations": [op]}).json()["id"]
    url = wait_finished(sb, batch_id)["response_body_url"]
    assert api.get(url).status_code == 400  # the API key must not travel to the results host
    assert requests.get(url.replace("Signature=", "Signature=x")).status_code == 403
    assert requests.get(url).status_code == 200


def test_batches_are_listed_and_deleted(sb: Any, api: requests.Session) -> None:
    op = put_op(sb.audience_id, "a@segport-test.net", "a")
    first = api.post(sb.api_base_url + "/batches", json={"operations": [op]}).json()["id"]
    url = wait_finished(sb, first)["response_body_url"]
    second = api.post(sb.api_base_url + "/batches", json={"operations": []}).json()["id"]
    listed = api.get(sb.api_base_url + "/batches").json()
    assert listed["total_items"] == 2 and [b["id"] for b in listed["batches"]] == [first, second]
    assert api.delete(f"{sb.api_base_url}/batches/{first}").status_code == 204
    assert_problem(api.get(f"{sb.api_base_url}/batches/{first}"), 404, "Resource Not Found")
    assert_problem(api.delete(f"{sb.api_base_url}/batches/{first}"), 404, "Resource Not Found")
    # results of a deleted batch are gone (docs/providers/mailchimp.md#batch-status)
    assert requests.get(url).status_code == 403
    sb.reset()
    assert api.get(sb.api_base_url + "/batches").json()["total_items"] == 0


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({}, "operations", "Schema describes array, null found instead"),
        ({"operations": {}}, "operations", "Schema describes array, object found instead"),
        ({"operations": ["PUT"]}, "operations.item:0", "Schema describes object, string found instead"),
        (
            {"operations": [{"method": "PUT", "path": "/ping", "body": {}}]},
            "operations.item:0.body",
            "Schema describes string, object found instead",
        ),
        ({"operations": [{"method": "FETCH", "path": "/ping"}]}, "operations.item:0.method", None),
        ({"operations": [{"method": "GET", "path": "ping"}]}, "operations.item:0.path", None),
        ({"operations": [{"method": "GET", "path": "/ping", "params": []}]}, "operations.item:0.params", None),
    ],
)
def test_badly_shaped_batches_are_refused(
    sb: Any, api: requests.Session, body: dict[str, Any], field: str, message: str | None
) -> None:
    problem = assert_problem(api.post(sb.api_base_url + "/batches", json=body), 400, "Invalid Resource")
    assert [e["field"] for e in problem["errors"]] == [field]
    if message is not None:
        assert problem["errors"][0]["message"] == message
    assert sb.state()["batches"] == []


def test_batches_run_one_at_a_time_each_in_about_one_latency_period(sb: Any) -> None:
    sb.set_faults(latency_ms=300)
    ops = [put_op(sb.audience_id, f"p{i}@segport-test.net", f"r{i}") for i in range(100)]
    ids: list[str] = []
    lock = threading.Lock()

    def submit() -> None:
        resp = requests.post(sb.api_base_url + "/batches", json={"operations": ops}, auth=("u", sb.api_key))
        with lock:
            ids.append(resp.json()["id"])

    started = time.monotonic()
    threads = [threading.Thread(target=submit) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    most_running = 0
    while True:
        statuses = [b["status"] for b in sb.state()["batches"]]
        most_running = max(most_running, statuses.count("started"))
        if statuses.count("finished") == 3:
            break
        assert time.monotonic() - started < 5, statuses  # 100 operations never cost 100 latencies
        time.sleep(0.01)
    assert most_running == 1
    assert time.monotonic() - started >= 0.3 + 3 * 0.3 - 0.05  # submit latency, then 3 batches in a row
    assert sb.summary()["members"] == {"subscribed": 100}


def test_faults_hit_the_batch_endpoints_and_each_operation(sb: Any, api: requests.Session) -> None:
    sb.set_faults(fail_rate=1.0, status_codes=(503,))
    op = put_op(sb.audience_id, "a@segport-test.net", "a")
    assert_problem(api.post(sb.api_base_url + "/batches", json={"operations": [op]}), 503, "Service Unavailable")
    assert sb.state()["batches"] == []
    sb.set_faults(fail_rate=0.0, latency_ms=300)  # the batch then waits 300 ms before it runs
    batch_id = api.post(sb.api_base_url + "/batches", json={"operations": [op]}).json()["id"]
    sb.set_faults(fail_rate=1.0, status_codes=(429,))  # the operation is rolled when it runs
    assert api.get(f"{sb.api_base_url}/batches/{batch_id}").status_code == 429
    done = wait_finished(sb, batch_id)
    sb.set_faults(fail_rate=0.0, latency_ms=0)
    assert done["errored_operations"] == 1
    assert results(done["response_body_url"])["a"][0] == 429
    assert sb.summary()["members"] == {}  # a faulted operation never wrote
    logged = [(m, p) for m, p in sb.requests_log if "batch" in p]
    assert logged[0] == ("POST", "/3.0/batches") and logged[-1][1].startswith("/batch-results/")


# -- OAuth2 (docs/providers/mailchimp.md#oauth2-authorization-code) ------------------------------------------


def test_oauth_code_flow_end_to_end(sb: Any) -> None:
    redirect = "http://127.0.0.1:9999/callback"
    resp = requests.get(
        sb.base_url + "/oauth2/authorize",
        allow_redirects=False,
        params={"response_type": "code", "client_id": "cid", "redirect_uri": redirect, "state": "xyz"},
    )
    assert resp.status_code == 302
    location = urlsplit(resp.headers["Location"])
    query = parse_qs(location.query)
    assert f"{location.scheme}://{location.netloc}{location.path}" == redirect and query["state"] == ["xyz"]
    form = {
        "grant_type": "authorization_code",
        "client_id": "cid",
        "client_secret": "secret",
        "redirect_uri": redirect,
        "code": query["code"][0],
    }
    token = requests.post(sb.base_url + "/oauth2/token", data=form).json()
    assert token["expires_in"] == 0 and token["scope"] is None and re.fullmatch(r"[0-9a-f]+", token["access_token"])
    reused = requests.post(sb.base_url + "/oauth2/token", data=form)
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    meta = requests.get(sb.base_url + "/oauth2/metadata", headers={"Authorization": f"OAuth {token['access_token']}"})
    assert meta.json()["dc"] == "us1" and meta.json()["api_endpoint"] == sb.base_url
    assert {"role", "accountname", "user_id", "login", "login_url"} <= meta.json().keys()
    bad = requests.get(sb.base_url + "/oauth2/metadata", headers={"Authorization": "OAuth nope"})
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_token"
    bearer = {"Authorization": f"Bearer {token['access_token']}"}
    assert requests.get(meta.json()["api_endpoint"] + "/3.0/ping", headers=bearer).status_code == 200
    sb.revoke_key()
    assert_problem(requests.get(sb.api_base_url + "/ping", headers=bearer), 401, "API Key Invalid")


# -- test API and Python hooks ---------------------------------------------------------------------------


def test_control_api(sb: Any, api: requests.Session) -> None:
    base = sb.base_url + "/_sandbox"
    seeded = requests.post(
        base + "/members",
        json={"email": "a@segport-test.net", "status": "cleaned", "merge_fields": {"FNAME": "A"}, "tags": ["t"]},
    )
    assert seeded.status_code == 200 and seeded.json()["status"] == "cleaned"
    assert requests.post(base + "/members", json={"email": "b@segport-test.net", "status": "nope"}).status_code == 400
    state = requests.get(base + "/state").json()
    audience = state["lists"][sb.audience_id]
    assert audience["members"]["a@segport-test.net"] == {
        "email_address": "a@segport-test.net",
        "status": "cleaned",
        "email_type": "html",
        "merge_fields": {"FNAME": "A"},
        "tags": ["t"],
    }
    assert {"list", "merge_fields", "segments", "deleted"} <= audience.keys() and state["revoked"] is False
    assert requests.get(base + "/summary").json()["tags"] == {"t": 1}
    faults = requests.post(base + "/faults", json={"fail_rate": 0.0, "latency_ms": 1}).json()
    assert faults["latency_ms"] == 1 and sb.latency_ms == 1
    assert requests.post(base + "/revoke").status_code == 204
    assert api.get(sb.api_base_url + "/ping").status_code == 401
    assert requests.post(base + "/reset").status_code == 204
    assert api.get(sb.api_base_url + "/ping").status_code == 200 and sb.latency_ms == 0
    assert sb.summary()["members"] == {} and ("GET", "/3.0/ping") in sb.requests_log


def _check_served(lines: dict[str, str]) -> None:
    assert lines["base_url"].startswith("http://127.0.0.1:")
    assert lines["api_base_url"] == lines["base_url"] + "/3.0"
    resp = requests.get(lines["api_base_url"] + "/ping", auth=("u", lines["api_key"]))
    assert resp.status_code == 200
    audience = requests.get(f"{lines['api_base_url']}/lists/{lines['audience_id']}", auth=("u", lines["api_key"]))
    assert audience.status_code == 200


def _parse(text: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)


@pytest.mark.skipif(not PACKAGE_IMPORTABLE, reason="segport_mailchimp not installed: main() runs in-process")
def test_main_as_module_in_a_subprocess() -> None:
    cmd = [
        sys.executable,
        "-m",
        "segport_mailchimp.sandbox",
        "--port",
        "0",
        "--latency-ms",
        "0",
        "--fail-rate",
        "0",
        "--seed",
        "1",
    ]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        lines = _parse("".join(proc.stdout.readline() for _ in range(4)))
        try:
            _check_served(lines)
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(10) == 0
    assert lines["api_key"] == MailchimpSandbox(seed=1).api_key


@pytest.mark.skipif(PACKAGE_IMPORTABLE, reason="covered by the subprocess test")
def test_main_in_process_until_sigint(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    seen: dict[str, str] = {}
    problems: list[BaseException] = []

    def drive() -> None:
        try:
            deadline = time.monotonic() + 5
            while "audience_id" not in out.getvalue() and time.monotonic() < deadline:
                time.sleep(0.01)
            seen.update(_parse(out.getvalue()))
            _check_served(seen)
        except BaseException as exc:  # reported by the main thread
            problems.append(exc)
        finally:
            os.kill(os.getpid(), signal.SIGINT)

    driver = threading.Thread(target=drive)
    driver.start()
    assert sandbox_module.main(["--port", "0", "--seed", "1"]) == 0
    driver.join()
    assert not problems, problems
    assert seen["api_key"] == MailchimpSandbox(seed=1).api_key and set(seen) == {
        "base_url",
        "api_base_url",
        "api_key",
        "audience_id",
    }


# -- as strict as the platform: addresses, archiving, compliance, limits, problem documents, fields ---------


@pytest.fixture
def client(sb: Any) -> Any:
    """The official ``mailchimp-marketing`` client pointed at the sandbox (skipped when not installed)."""
    marketing = pytest.importorskip("mailchimp_marketing")
    mc = marketing.Client()
    mc.set_config({"api_key": sb.api_key, "server": "us1"})
    mc.api_client.host = sb.api_base_url  # the client builds https://us1.api.mailchimp.com/3.0 otherwise
    return mc


def client_error(call: Any) -> tuple[int, dict[str, Any]]:
    """Run ``call``, which must fail with the official client's ``ApiClientError``; its status and problem."""
    from mailchimp_marketing.api_client import ApiClientError

    with pytest.raises(ApiClientError) as caught:
        call()
    text = caught.value.text
    return caught.value.status_code, text if isinstance(text, dict) else json.loads(text)


RESERVED = (
    "ada@example.com",
    "ada@mail.example.org",
    "ada@example.net",
    "ada@lab.example",
    "ada@lab.test",
    "ada@lab.invalid",
    "ada@lab.localhost",
)


@pytest.mark.parametrize("email", RESERVED)
def test_reserved_domains_look_fake_through_the_official_client(sb: Any, client: Any, email: str) -> None:
    body = {"email_address": email, "status_if_new": "subscribed"}
    status, problem = client_error(lambda: client.lists.set_list_member(sb.audience_id, md5(email), body))
    assert (status, problem["title"]) == (400, "Invalid Resource")
    assert problem["detail"] == f"{email} looks fake or invalid, please enter a real email address."
    out = client.lists.batch_list_members(sb.audience_id, {"members": [sub(email)]})
    assert out["total_created"] == 0 and out["errors"][0]["error"] == problem["detail"]
    assert sb.members() == []


@pytest.mark.parametrize("email", ["ada@@segport-test.net", "ada segport-test.net", "ada@segport-test", "@x.net"])
def test_malformed_addresses_are_not_called_fake(sb: Any, client: Any, email: str) -> None:
    body = {"email_address": email, "status_if_new": "subscribed"}
    status, problem = client_error(lambda: client.lists.set_list_member(sb.audience_id, md5(email), body))
    assert (status, problem["detail"]) == (400, "Please provide a valid email address.")
    out = client.lists.batch_list_members(sb.audience_id, {"members": [sub(email)]})
    assert out["errors"][0]["error"] == "Please provide a valid email address."
    assert out["errors"][0]["field"] == "email_address"


def test_archiving_a_pending_member_answers_405_allow_get_put(sb: Any, api: requests.Session, lst: str) -> None:
    sb.add_member("waiting@segport-test.net", "pending")
    resp = api.delete(f"{lst}/members/{md5('waiting@segport-test.net')}")
    detail = "This list member cannot be removed. Can not archive a contact that is bounced, pending or archived"
    assert_problem(resp, 405, "Method Not Allowed", detail)
    assert resp.headers["Allow"] == "GET, PUT"
    assert {m.email: m.status for m in sb.members()} == {"waiting@segport-test.net": "pending"}
    sb.add_member("bounced@segport-test.net", "cleaned")
    assert api.delete(f"{lst}/members/{md5('bounced@segport-test.net')}").status_code == 405
    sb.add_member("here@segport-test.net", "subscribed")
    assert api.delete(f"{lst}/members/{md5('here@segport-test.net')}").status_code == 204
    assert api.delete(f"{lst}/members/{md5('here@segport-test.net')}").status_code == 405  # already archived


def test_archiving_a_pending_member_through_the_official_client(sb: Any, client: Any) -> None:
    sb.add_member("waiting@segport-test.net", "pending")
    status, problem = client_error(
        lambda: client.lists.delete_list_member(sb.audience_id, md5("waiting@segport-test.net"))
    )
    assert (status, problem["title"]) == (405, "Method Not Allowed")


def test_compliance_flagged_address_may_be_added_as_pending(sb: Any, client: Any) -> None:
    sb.mark_compliance("flagged@segport-test.net")
    assert requests.post(sb.base_url + "/_sandbox/compliance", json={"email": "other@segport-test.net"}).ok
    body = {"email_address": "flagged@segport-test.net", "status_if_new": "pending"}
    member = client.lists.set_list_member(sb.audience_id, md5("flagged@segport-test.net"), body)
    assert member["status"] == "pending"
    out = client.lists.batch_list_members(
        sb.audience_id, {"members": [sub("other@segport-test.net", "subscribed"), sub("late@segport-test.net")]}
    )
    assert [e["email_address"] for e in out["errors"]] == ["other@segport-test.net"]  # subscribed stays refused
    assert "compliance state" in out["errors"][0]["error"]


def test_over_500_members_answered_with_the_platform_text(sb: Any, api: requests.Session, lst: str) -> None:
    detail = "Maximum allowed member items exceeded, please provide at most 500 items in members field"
    members = [sub(f"u{i}@segport-test.net") for i in range(501)]
    assert_problem(api.post(lst, json={"members": members}), 400, "Invalid Resource", detail)
    tag = api.post(f"{lst}/segments", json={"name": "big", "static_segment": []}).json()
    emails = [m["email_address"] for m in members]
    detail = (
        "Maximum allowed member items exceeded, please provide at most 500 items in members_to_add field or "
        "members_to_remove field"
    )
    resp = api.post(f"{lst}/segments/{tag['id']}", json={"members_to_add": emails})
    assert_problem(resp, 400, "Invalid Resource", detail)


def test_problem_documents_link_their_schema_and_name_item_paths(sb: Any, api: requests.Session, lst: str) -> None:
    resp = api.post(lst, json={"members": [sub("a@segport-test.net"), {"email_address": "b@segport-test.net"}]})
    problem = assert_problem(resp, 400, "Invalid Resource")
    assert resp.headers["Link"] == (
        '<https://us1.api.mailchimp.com/schema/3.0/ProblemDetailDocument.json>; rel="describedBy"'
    )
    assert [e["field"] for e in problem["errors"]] == ["members.item:1.status"]
    resp = api.post(f"{lst}/members/{md5('a@segport-test.net')}/tags", json={"tags": [{"name": "x"}]})
    assert [e["field"] for e in assert_problem(resp, 400, "Invalid Resource")["errors"]] == ["tags.item:0.status"]
    assert 'rel="describedBy"' in api.get(lst + "/nothing-here").headers["Link"]


def test_fields_and_exclude_fields_trim_get_answers(sb: Any, client: Any) -> None:
    sb.add_member("ada@segport-test.net", merge_fields={"FNAME": "Ada"}, tags=["vip"])
    sb.add_member("grace@segport-test.net", "unsubscribed")
    page = client.lists.get_list_members_info(sb.audience_id, fields=["members.email_address", "total_items"])
    assert page == {
        "members": [{"email_address": "ada@segport-test.net"}, {"email_address": "grace@segport-test.net"}],
        "total_items": 2,
    }
    member = client.lists.get_list_member(
        sb.audience_id, md5("ada@segport-test.net"), exclude_fields=["merge_fields", "_links", "tags.id", "stats"]
    )
    assert "merge_fields" not in member and "stats" not in member and "_links" not in member
    assert member["tags"] == [{"name": "vip"}] and member["status"] == "subscribed"
    audience = client.lists.get_list(sb.audience_id, fields=["id", "stats.member_count"])
    assert audience == {"id": sb.audience_id, "stats": {"member_count": 1}}


def test_fields_apply_inside_batch_operations_and_leave_errors_whole(sb: Any, api: requests.Session) -> None:
    op = {"method": "GET", "path": f"/lists/{sb.audience_id}", "params": {"fields": "id"}, "operation_id": "a"}
    missing = {"method": "GET", "path": "/lists/0000000000", "params": {"fields": "id"}, "operation_id": "b"}
    batch_id = api.post(sb.api_base_url + "/batches", json={"operations": [op, missing]}).json()["id"]
    assert sb.wait_idle(10)
    url = api.get(f"{sb.api_base_url}/batches/{batch_id}").json()["response_body_url"]
    with tarfile.open(fileobj=io.BytesIO(requests.get(url).content), mode="r:gz") as tar:
        results = [r for m in tar.getmembers() if m.isfile() for r in json.load(tar.extractfile(m))]  # type: ignore[arg-type]
    found = {r["operation_id"]: (r["status_code"], json.loads(r["response"])) for r in results}
    assert found["a"] == (200, {"id": sb.audience_id})
    assert found["b"][0] == 404 and found["b"][1]["title"] == "Resource Not Found"

# -- API- versus self-unsubscribed; archived members (docs/providers/mailchimp.md#api-versus-self-unsubscribed) --
def test_an_api_unsubscribed_member_may_be_subscribed_again_by_the_api(
    sb: Any, api: requests.Session, lst: str
) -> None:
    url = f"{lst}/members/{md5('api@segport-test.net')}"
    body = {"email_address": "api@segport-test.net", "status_if_new": "subscribed"}
    assert api.put(url, json=body).json()["status"] == "subscribed"
    unsubscribed = api.patch(url, json={"status": "unsubscribed"}).json()
    assert unsubscribed["status"] == "unsubscribed" and unsubscribed["unsubscribe_reason"]
    assert api.put(url, json={**body, "status": "subscribed"}).json()["status"] == "subscribed"
    # seeded as unsubscribed by an API call (a test-API choice): also re-subscribable, in a batch too
    sb.add_member("seeded@segport-test.net", "unsubscribed", unsubscribed_by="api")
    out = batch(api, lst, [sub("seeded@segport-test.net")], update_existing=True)
    assert out["total_updated"] == 1 and out["updated_members"][0]["status"] == "subscribed"


def test_a_self_unsubscribed_member_is_in_compliance_state(sb: Any, api: requests.Session, lst: str) -> None:
    sb.add_member("self@segport-test.net", "unsubscribed")  # seeded unsubscribed: they unsubscribed themselves
    url = f"{lst}/members/{md5('self@segport-test.net')}"
    body = {"email_address": "self@segport-test.net", "status_if_new": "subscribed", "status": "subscribed"}
    assert_problem(
        api.put(url, json=body),
        400,
        "Member In Compliance State",
        "self@segport-test.net is in a compliance state due to unsubscribe, bounce, or compliance review "
        "and cannot be subscribed.",
    )
    assert api.get(url).json()["status"] == "unsubscribed"
    assert api.patch(url, json={"status": "pending"}).json()["status"] == "pending"  # a re-confirmation email
    with pytest.raises(ValueError, match="unsubscribed_by"):
        sb.add_member("x@segport-test.net", "unsubscribed", unsubscribed_by="someone")


def test_archived_members_are_reported_archived_listed_and_re_addable(sb: Any, api: requests.Session, lst: str) -> None:
    sb.add_member("gone@segport-test.net", "unsubscribed")
    url = f"{lst}/members/{md5('gone@segport-test.net')}"
    assert api.delete(url).status_code == 204
    assert api.get(url).json()["status"] == "archived"  # its earlier status is not reported
    listed = api.get(lst + "/members", params={"status": "archived", "count": 1000, "offset": 0}).json()
    assert [m["email_address"] for m in listed["members"]] == ["gone@segport-test.net"] and listed["total_items"] == 1
    # A PUT with status_if_new re-adds an archived member, whatever they were before archiving
    re_added = api.put(url, json={"email_address": "gone@segport-test.net", "status_if_new": "subscribed"}).json()
    assert re_added["status"] == "subscribed"
