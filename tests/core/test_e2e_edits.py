"""End to end: edits that keep the sync state (issue 16), through the real CLI against both sandboxes.

A rotated key, a renamed or re-shared connection, a removed mapping, other segments or another
connection of the same account must not make the next run send what was delivered already; every
edit is audited field by field with secrets masked; markers colliding case-insensitively on one
audience/list are refused.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlparse

import pytest
import requests

from segport.testing.files import write_keys, write_rows
from segport.testing.operator import Operator
from segport_campaignmonitor.sandbox import CampaignMonitorSandbox
from segport_mailchimp.sandbox import MailchimpSandbox

pytestmark = pytest.mark.e2e
COUNT = 120
WRITES = ("POST", "PUT", "PATCH", "DELETE")
SEGPORT = (sys.executable, "-m", "segport")


@pytest.fixture
def mailchimp() -> Iterator[MailchimpSandbox]:
    with MailchimpSandbox(seed=16) as server:
        yield server


@pytest.fixture
def campaignmonitor() -> Iterator[CampaignMonitorSandbox]:
    with CampaignMonitorSandbox(seed=16) as server:
        yield server


def email(i: int) -> str:
    return f"person{i}@shop.segport-test.net"


def write_profiles(path: Path, renamed: frozenset[int] = frozenset()) -> Path:
    def row(i: int) -> list[str]:
        return [
            f"p{i:04d}",
            email(i),
            "Renamed" if i in renamed else f"First{i}",
            f"Last{i}",
            "gold" if i % 3 else "basic",
        ]

    return write_rows(path, ["id", "email", "first_name", "last_name", "tier"], map(row, range(COUNT)))


def workspace(tmp_path: Path, database_url: str | None) -> Operator:
    op = Operator.init(tmp_path / "ws", database_url=database_url)
    op("profiles", "load", str(write_profiles(tmp_path / "profiles.csv")))
    op("segments", "define", "VIP", "--where", "tier = 'gold'")
    op("segments", "load", "vip", str(write_keys(tmp_path / "vip.txt", (f"p{i:04d}" for i in range(0, COUNT, 5)))))
    return op


def add_connection(op: Operator, name: str, type_: str, config: dict[str, Any]) -> None:
    op("connections", "add", name, "--type", type_, "--config", json.dumps(config), "--agree-privacy")


def mailchimp_export(tmp_path: Path, sandbox: MailchimpSandbox, database_url: str | None) -> Operator:
    op = workspace(tmp_path, database_url)
    add_connection(op, "mc", "mailchimp", sandbox.demo_connection())
    op(
        "exports",
        "add",
        "news",
        "--connection",
        "mc",
        "--segment",
        "VIP",
        "--email",
        "email",
        "--map",
        "FNAME=first_name",
        "--map",
        "LNAME=last_name",
        "--option",
        f"audience_id={sandbox.audience_id}",
    )
    first = op.run_json("news")
    assert first["status"] == "succeeded" and first["counts"]["created"] == 80
    return op


def members(sandbox: MailchimpSandbox) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = sandbox.state()["lists"][sandbox.audience_id]["members"]
    return found


def writes_since(sandbox: MailchimpSandbox | CampaignMonitorSandbox, seen: int) -> list[tuple[str, str]]:
    return [(method, path) for method, path in sandbox.requests_log[seen:] if method in WRITES]


def last_audit(op: Operator, action: str) -> dict[str, Any]:
    entries: list[dict[str, Any]] = json.loads(op("audit", "list", "--json").stdout)
    return next(entry for entry in entries if entry["action"] == action)


def test_a_rotated_key_keeps_the_sync_state_and_is_never_shown(
    tmp_path: Path, mailchimp: MailchimpSandbox, database_url: str | None
) -> None:
    op = mailchimp_export(tmp_path, mailchimp, database_url)
    old_key = mailchimp.api_key
    new_key = mailchimp.rotate_key()
    assert op("exports", "run", "news", check=False).returncode == 8  # the old key is refused now (auth error)
    secrets_file = tmp_path / "secrets.json"
    secrets_file.write_text(json.dumps({"api_key": new_key}), encoding="utf-8")
    edited = op("connections", "edit", "mc", "--config", str(secrets_file))
    assert "config.api_key: (hidden) -> (hidden)" in edited.stdout
    assert "checked: authenticates as" in edited.stdout
    seen = len(mailchimp.requests_log)
    second = op.run_json("news")
    assert second["status"] == "succeeded"
    assert (
        second["counts"]["unchanged"] == 80
        and not second["counts"].get("created")
        and not second["counts"].get("updated")
    )
    assert writes_since(mailchimp, seen) == []  # the next run sends nothing new
    entry = last_audit(op, "connections.edit")
    assert entry["target"] == "mc"
    assert entry["detail"]["changes"] == {"config.api_key": {"old": "(hidden)", "new": "(hidden)"}}
    shown = op("audit", "list").stdout + op("audit", "list", "--json").stdout + op("connections", "show", "mc").stdout
    for key in (old_key, new_key):
        assert key not in shown and key[:8] not in shown and key not in edited.stdout + edited.stderr
    assert "config.api_key: (hidden) -> (hidden)" in op("audit", "list").stdout


def test_rotation_from_stdin_and_a_key_of_another_account_is_refused(
    tmp_path: Path, mailchimp: MailchimpSandbox, database_url: str | None
) -> None:
    op = mailchimp_export(tmp_path, mailchimp, database_url)
    with MailchimpSandbox(seed=99) as other:  # another account (another data centre's API root)
        other_config = json.dumps({"api_key": other.api_key, "api_base_url": other.api_base_url})
        refused = subprocess.run(
            [*SEGPORT, "connections", "edit", "mc", "--config", "-"],
            input=other_config,
            env=op.env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert refused.returncode == 3, refused.stderr
        assert "--force" in refused.stderr and other.api_key not in refused.stderr
    new_key = requests.post(mailchimp.base_url + "/_sandbox/rotate", timeout=10).json()["api_key"]  # the test API
    rotated = subprocess.run(
        [*SEGPORT, "connections", "edit", "mc", "--config", "-", "--json"],
        input=json.dumps({"api_key": new_key}),
        env=op.env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert rotated.returncode == 0, rotated.stderr
    document = json.loads(rotated.stdout)
    assert document["changes"] == {"config.api_key": {"old": "(hidden)", "new": "(hidden)"}}
    assert new_key not in rotated.stdout
    assert op.run_json("news")["counts"]["unchanged"] == 80


def test_after_a_rotation_a_key_of_another_account_is_compared_with_the_last_checked_one(
    tmp_path: Path, mailchimp: MailchimpSandbox, database_url: str | None
) -> None:
    op = mailchimp_export(tmp_path, mailchimp, database_url)
    mailchimp.rotate_key()  # the old key is refused now: it can no longer name its account
    with MailchimpSandbox(seed=99) as other:
        other_file = tmp_path / "other.json"
        other_file.write_text(json.dumps(other.demo_connection()), encoding="utf-8")
        refused = op("connections", "edit", "mc", "--config", str(other_file), check=False)
        assert refused.returncode == 3, refused.stderr
        assert "--force" in refused.stderr and "not Sandbox (" + mailchimp.api_base_url in refused.stderr
        forced = op("connections", "edit", "mc", "--config", str(other_file), "--force")
        assert "another account" in forced.stderr and "last check" in forced.stderr


def test_an_old_endpoint_that_no_longer_answers_is_compared_with_the_last_checked_account(
    tmp_path: Path, mailchimp: MailchimpSandbox, database_url: str | None
) -> None:
    op = mailchimp_export(tmp_path, mailchimp, database_url)
    old_url = mailchimp.api_base_url
    mailchimp.stop()  # the old endpoint no longer answers
    with MailchimpSandbox(seed=99) as other:
        moved = tmp_path / "moved.json"
        moved.write_text(json.dumps(other.demo_connection()), encoding="utf-8")
        refused = op("connections", "edit", "mc", "--config", str(moved), check=False)
        assert refused.returncode == 3, refused.stderr  # not 15 naming the old host: only the new one must answer
        assert "not Sandbox (" + old_url in refused.stderr and "--force" in refused.stderr
        forced = json.loads(op("connections", "edit", "mc", "--config", str(moved), "--force", "--json").stdout)
        assert forced["account"].endswith(f"({other.api_base_url})")
        other.stop()
        gone = op("connections", "edit", "mc", "--config", json.dumps({"api_base_url": old_url}), check=False)
        assert gone.returncode == 15 and urlparse(old_url).netloc in gone.stderr  # the NEW endpoint must answer


def test_secrets_given_inline_are_accepted_with_a_warning(
    tmp_path: Path, mailchimp: MailchimpSandbox, database_url: str | None
) -> None:
    op = workspace(tmp_path, database_url)
    inline = json.dumps(mailchimp.demo_connection())
    added = op("connections", "add", "mc", "--type", "mailchimp", "--config", inline, "--agree-privacy")
    warnings = [line for line in added.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "api_key" in warnings[0] and "ps" in warnings[0] and "stdin" in warnings[0]
    assert mailchimp.api_key not in added.stderr
    new_key = mailchimp.rotate_key()
    edited = op("connections", "edit", "mc", "--config", json.dumps({"api_key": new_key}))
    assert sum(line.startswith("warning:") for line in edited.stderr.splitlines()) == 1 and new_key not in edited.stderr
    plain = op("connections", "edit", "mc", "--config", json.dumps({"api_base_url": mailchimp.api_base_url}))
    assert "warning:" not in plain.stderr  # no secret inline
    from_file = tmp_path / "key.json"
    from_file.write_text(json.dumps({"api_key": new_key}), encoding="utf-8")
    assert "warning:" not in op("connections", "edit", "mc", "--config", str(from_file)).stderr
    piped = op("connections", "edit", "mc", "--config", "-", input=json.dumps({"api_key": new_key}))
    assert "warning:" not in piped.stderr


def test_rename_and_share_keep_exports_working(
    tmp_path: Path, mailchimp: MailchimpSandbox, database_url: str | None
) -> None:
    op = mailchimp_export(tmp_path, mailchimp, database_url)
    op("users", "add", "carl", "--role", "contributor")
    edited = json.loads(
        op("connections", "edit", "mc", "--rename", "Mailchimp main", "--share", "contributors", "--json").stdout
    )
    assert edited["name"] == "Mailchimp main" and edited["share"] == "contributors"
    assert edited["changes"] == {
        "name": {"old": "mc", "new": "Mailchimp main"},
        "share": {"old": "admins", "new": "contributors"},
    }
    assert json.loads(op("exports", "show", "news", "--json").stdout)["connection"] == "Mailchimp main"
    seen = len(mailchimp.requests_log)
    run = json.loads(op("--as", "carl", "exports", "run", "news", "--json").stdout)  # shared now
    assert run["counts"]["unchanged"] == 80 and writes_since(mailchimp, seen) == []
    assert "share: admins -> contributors" in op("audit", "list").stdout
    assert op("connections", "edit", "Mailchimp main", check=False).returncode == 3  # nothing to change


def test_unmap_stops_sending_the_field_and_the_next_run_sends_only_real_changes(
    tmp_path: Path, mailchimp: MailchimpSandbox, database_url: str | None
) -> None:
    op = mailchimp_export(tmp_path, mailchimp, database_url)
    edited = json.loads(op("exports", "edit", "news", "--unmap", "LNAME", "--json").stdout)
    assert edited["mapping"] == {"FNAME": "first_name"} and edited["sync_state"] == "kept"
    assert edited["changes"] == {"mapping.LNAME": {"old": "last_name", "new": None}}
    seen = len(mailchimp.requests_log)
    second = op.run_json("news")
    assert second["counts"]["unchanged"] == 80 and writes_since(mailchimp, seen) == []
    assert members(mailchimp)[email(1)]["merge_fields"]["LNAME"] == "Last1"  # left as it is at the platform
    op("profiles", "load", str(write_profiles(tmp_path / "profiles.csv", renamed=frozenset({1}))))
    third = op.run_json("news")
    assert third["counts"]["updated"] == 1 and third["counts"]["unchanged"] == 79
    member = members(mailchimp)[email(1)]["merge_fields"]
    assert member["FNAME"] == "Renamed" and member["LNAME"] == "Last1"
    assert "mapping.LNAME: last_name -> -" in op("audit", "list").stdout
    refused = op("exports", "edit", "news", "--unmap", "NOPE", check=False)
    assert refused.returncode == 3 and "NOPE" in refused.stderr


def test_segments_change_keeps_the_state_of_the_remaining_ones(
    tmp_path: Path, mailchimp: MailchimpSandbox, database_url: str | None
) -> None:
    op = workspace(tmp_path, database_url)
    op("segments", "load", "Newsletter", str(write_keys(tmp_path / "n.txt", (f"p{i:04d}" for i in range(0, COUNT, 2)))))
    add_connection(op, "mc", "mailchimp", mailchimp.demo_connection())
    op(
        "exports",
        "add",
        "news",
        "--connection",
        "mc",
        "--segment",
        "VIP",
        "--segment",
        "Newsletter",
        "--email",
        "email",
        "--map",
        "FNAME=first_name",
        "--option",
        f"audience_id={mailchimp.audience_id}",
    )
    assert op.run_json("news")["counts"]["created"] == 100
    edited = json.loads(op("exports", "edit", "news", "--segment", "VIP", "--json").stdout)
    assert edited["sync_state"] == "kept"
    assert edited["changes"] == {"segments": {"old": ["VIP", "Newsletter"], "new": ["VIP"]}}
    second = op.run_json("news")
    # 40 in both and 20 only in Newsletter lose its tag (updated); the 40 only in VIP are left alone
    assert second["counts"]["updated"] == 60 and second["counts"]["unchanged"] == 40
    assert not second["counts"]["created"]
    assert "Newsletter" not in members(mailchimp)[email(2)]["tags"]


def test_move_to_another_connection_of_the_same_account_keeps_the_state(
    tmp_path: Path, mailchimp: MailchimpSandbox, database_url: str | None
) -> None:
    op = mailchimp_export(tmp_path, mailchimp, database_url)
    add_connection(op, "mc-team", "mailchimp", mailchimp.demo_connection())
    moved = json.loads(op("exports", "edit", "news", "--connection", "mc-team", "--json").stdout)
    assert moved["connection"] == "mc-team" and moved["sync_state"] == "kept"
    assert moved["changes"] == {"connection": {"old": "mc", "new": "mc-team"}}
    seen = len(mailchimp.requests_log)
    assert op.run_json("news")["counts"]["unchanged"] == 80 and writes_since(mailchimp, seen) == []
    with MailchimpSandbox(seed=77) as other:
        add_connection(op, "elsewhere", "mailchimp", other.demo_connection())
        refused = op("exports", "edit", "news", "--connection", "elsewhere", check=False)
        assert refused.returncode == 3 and "--force" in refused.stderr and "sync state" in refused.stderr
        forced = json.loads(op("exports", "edit", "news", "--connection", "elsewhere", "--force", "--json").stdout)
        assert forced["sync_state"] == "reset"
    op(
        "connections",
        "add",
        "cm",
        "--type",
        "campaignmonitor",
        "--agree-privacy",
        "--no-check",
        "--config",
        json.dumps({"api_key": "k" * 32, "api_base_url": "http://127.0.0.1:9"}),
    )
    other_type = op("exports", "edit", "news", "--connection", "cm", "--no-check", check=False)
    assert other_type.returncode == 3  # another platform: its options do not fit


def test_colliding_tags_are_refused_unless_forced(
    tmp_path: Path, mailchimp: MailchimpSandbox, database_url: str | None
) -> None:
    op = workspace(tmp_path, database_url)
    add_connection(op, "mc", "mailchimp", mailchimp.demo_connection())
    audience = f"audience_id={mailchimp.audience_id}"
    base = ("--connection", "mc", "--email", "email", "--option", audience)
    op("exports", "add", "gold", *base, "--segment", "VIP")
    refused = op("exports", "add", "picked", *base, "--segment", "vip", check=False)
    assert refused.returncode == 3
    line = refused.stderr.strip()
    assert (
        len(line.splitlines()) == 1 and "'picked'" in line and "'gold'" in line and "'vip'" in line and "'VIP'" in line
    )
    assert line.endswith("rename a segment, or pass --force") and "--segment NAME" not in line  # the fix, no other
    within = op("exports", "add", "both", *base, "--segment", "VIP", "--segment", "vip", check=False)
    assert within.returncode == 3 and "'VIP'" in within.stderr and "'vip'" in within.stderr
    assert within.stderr.strip().endswith("rename one segment, or pass --force")
    prefixed = op("exports", "add", "picked", *base, "--segment", "vip", "--option", "tag_prefix=seg-")
    assert prefixed.returncode == 0  # another tag name: seg-vip
    clash = op("exports", "edit", "picked", "--option", "tag_prefix=", check=False)
    assert clash.returncode == 3 and "'gold'" in clash.stderr
    assert op("exports", "add", "same", *base, "--segment", "VIP").returncode == 0  # one segment, one tag: no clash
    assert op("exports", "add", "forced", *base, "--segment", "vip", "--force").returncode == 0


def test_an_option_set_to_null_is_removed_back_to_its_default(
    tmp_path: Path, mailchimp: MailchimpSandbox, database_url: str | None
) -> None:
    op = workspace(tmp_path, database_url)
    add_connection(op, "mc", "mailchimp", mailchimp.demo_connection())
    base = ("--connection", "mc", "--email", "email", "--option", f"audience_id={mailchimp.audience_id}")
    op("exports", "add", "picked", *base, "--segment", "vip", "--option", "tag_prefix=seg-")
    edited = json.loads(op("exports", "edit", "picked", "--option", "tag_prefix=null", "--json").stdout)
    assert "tag_prefix" not in edited["options"] and edited["changes"]["options.tag_prefix"]["new"] is None, edited
    shown = json.loads(op("exports", "show", "picked", "--json").stdout)
    assert "tag_prefix" not in shown["options"]
    wrong = op("exports", "edit", "picked", "--option", "tag_prefix=true", check=False)
    assert wrong.returncode == 3 and "$.tag_prefix: true is not of type \"string\"" in wrong.stderr, wrong.stderr
    assert "True" not in wrong.stderr


def test_colliding_field_options_are_refused_on_a_campaign_monitor_list(
    tmp_path: Path, campaignmonitor: CampaignMonitorSandbox, database_url: str | None
) -> None:
    op = workspace(tmp_path, database_url)
    add_connection(op, "cm", "campaignmonitor", campaignmonitor.demo_connection())
    base = ("--connection", "cm", "--email", "email", "--option", f"list_id={campaignmonitor.list_id}")
    op("exports", "add", "gold", *base, "--segment", "VIP")
    refused = op("exports", "add", "picked", *base, "--segment", "vip", check=False)
    assert refused.returncode == 3 and "'gold'" in refused.stderr and "'picked'" in refused.stderr
    other_field = ("--option", "segment_field=Picked")
    assert op("exports", "add", "picked", *base, "--segment", "vip", *other_field).returncode == 0


def test_campaign_monitor_unmap_and_rotation_send_nothing_new(
    tmp_path: Path, campaignmonitor: CampaignMonitorSandbox, database_url: str | None
) -> None:
    op = workspace(tmp_path, database_url)
    add_connection(op, "cm", "campaignmonitor", campaignmonitor.demo_connection())
    op(
        "exports",
        "add",
        "news",
        "--connection",
        "cm",
        "--segment",
        "VIP",
        "--email",
        "email",
        "--map",
        "Name=first_name+last_name",
        "--map",
        "City=tier",
        "--option",
        f"list_id={campaignmonitor.list_id}",
    )
    answer = requests.post(
        f"{campaignmonitor.api_base_url}/lists/{campaignmonitor.list_id}/customfields.json",
        json={"FieldName": "City", "DataType": "Text"},
        auth=(campaignmonitor.api_key, "x"),
        timeout=10,
    )
    assert answer.status_code == 201, answer.text
    assert op.run_json("news")["counts"]["created"] == 80
    key_file = tmp_path / "key.json"
    key_file.write_text(json.dumps({"api_key": campaignmonitor.rotate_key()}), encoding="utf-8")
    op("connections", "edit", "cm", "--config", str(key_file))
    assert json.loads(op("exports", "edit", "news", "--unmap", "City", "--json").stdout)["sync_state"] == "kept"
    seen = len(campaignmonitor.requests_log)
    second = op.run_json("news")
    assert second["counts"]["unchanged"] == 80 and writes_since(campaignmonitor, seen) == []


def test_users_role_changes_a_role_and_never_drops_the_last_admin(tmp_path: Path, database_url: str | None) -> None:
    op = Operator.init(tmp_path / "ws", database_url=database_url)
    op("users", "add", "bob", "--role", "contributor")
    assert json.loads(op("users", "role", "bob", "admin", "--json").stdout)["role"] == "admin"
    assert last_audit(op, "users.role")["detail"] == {"changes": {"role": {"old": "contributor", "new": "admin"}}}
    assert "is now viewer" in op("users", "role", "ada", "viewer").stdout
    refused = op("--as", "bob", "users", "role", "bob", "contributor", check=False)
    assert refused.returncode == 3
    assert refused.stderr.strip() == (
        "error: user 'bob' is the last admin and keeps that role: make another user admin first"
    )
    denied = op("users", "role", "bob", "viewer", check=False)  # ada is a viewer now
    assert denied.returncode == 6
    assert op("--as", "bob", "users", "role", "nobody", "admin", check=False).returncode == 5
