"""Drift at Mailchimp, end to end: ``exports verify`` finds it, ``exports run --repair`` puts back only it.

The drift is made as a Mailchimp user would make it, through the platform's own API (a tag removed,
a merge field edited, a member archived, a member deleted for good): docs/sandboxes.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests

from segport import Workspace
from segport.testing.files import write_keys, write_rows
from segport.testing.operator import Operator
from segport_mailchimp.api import subscriber_hash
from segport_mailchimp.sandbox import MailchimpSandbox

pytestmark = pytest.mark.e2e
DRIFT_FOUND = 16


@pytest.fixture
def sandbox() -> Iterator[MailchimpSandbox]:
    server = MailchimpSandbox(seed=5)
    server.start()
    yield server
    server.stop()


def email(i: int) -> str:
    return f"person{i}@shop.segport-test.net"


class Platform:
    """A Mailchimp user's hands on the audience: the public API, nothing of segport."""

    def __init__(self, sandbox: MailchimpSandbox) -> None:
        self.base = sandbox.api_base_url
        self.auth = ("anystring", sandbox.api_key)
        self.audience = sandbox.demo_export_options()["audience_id"]

    def call(self, method: str, path: str, body: Any = None) -> requests.Response:
        answer = requests.request(
            method, f"{self.base}/lists/{self.audience}{path}", json=body, auth=self.auth, timeout=10
        )
        assert answer.status_code < 300, answer.text
        return answer

    def member_path(self, i: int) -> str:
        return f"/members/{subscriber_hash(email(i))}"

    def member(self, i: int) -> dict[str, Any]:
        found: dict[str, Any] = self.call("GET", self.member_path(i)).json()
        return found

    def tags(self, i: int) -> set[str]:
        return {tag["name"] for tag in self.member(i)["tags"]}


def setup(tmp_path: Path, sandbox: MailchimpSandbox, database_url: str | None, *, run: bool = True) -> Operator:
    op = Operator.init(tmp_path / "ws", database_url=database_url)
    rows = ([f"p{i:03d}", email(i), f"First{i}", "gold" if i % 2 == 0 else "basic"] for i in range(20))
    op("profiles", "load", str(write_rows(tmp_path / "profiles.csv", ["id", "email", "first_name", "tier"], rows)))
    op("segments", "define", "VIP", "--where", "tier = 'gold'")
    op("segments", "load", "Newsletter", str(write_keys(tmp_path / "news.txt", (f"p{i:03d}" for i in range(10)))))
    op(
        "connections",
        "add",
        "mc",
        "--type",
        "mailchimp",
        "--config",
        json.dumps(sandbox.demo_connection()),
        "--agree-privacy",
    )
    audience = sandbox.demo_export_options()["audience_id"]
    op(
        "exports",
        "add",
        "news",
        "--connection",
        "mc",
        "--email",
        "email",
        "--segment",
        "VIP",
        "--segment",
        "Newsletter",
        "--map",
        "FNAME=first_name",
        "--option",
        f"audience_id={audience}",
    )
    if run:
        assert op.run_json("news")["status"] == "succeeded"
    return op


def verify(op: Operator) -> tuple[int, dict[str, Any]]:
    result = op("exports", "verify", "news", "--json", check=False)
    assert result.returncode in (0, DRIFT_FOUND), result.stderr
    return result.returncode, json.loads(result.stdout)


def test_a_removed_tag_and_edited_name_are_put_back_while_the_archived_stay_archived(
    tmp_path: Path, sandbox: MailchimpSandbox, database_url: str | None
) -> None:
    op = setup(tmp_path, sandbox, database_url)
    mc = Platform(sandbox)
    code, report = verify(op)
    assert code == 0 and report["in_sync"] is True and report["checked"] == 15 and report["unchanged"] == 15

    # At Mailchimp: person 2 loses the VIP tag and gets another first name; person 4 is archived;
    # person 6 is deleted for good; person 8 unsubscribes; person 1 (basic) is tagged VIP by hand.
    mc.call("POST", mc.member_path(2) + "/tags", {"tags": [{"name": "VIP", "status": "inactive"}]})
    mc.call("PATCH", mc.member_path(2), {"merge_fields": {"FNAME": "Edited"}})
    mc.call("DELETE", mc.member_path(4))
    mc.call("POST", mc.member_path(6) + "/actions/delete-permanent")
    mc.call("PATCH", mc.member_path(8), {"status": "unsubscribed"})
    mc.call("POST", mc.member_path(1) + "/tags", {"tags": [{"name": "VIP", "status": "active"}]})

    # A delta run sees nothing: drift is invisible to it.
    assert op.run_json("news")["counts"]["updated"] == 0

    code, report = verify(op)
    assert code == DRIFT_FOUND and report["in_sync"] is False and report["checked"] == 15
    drifted = {p["email"]: p for p in report["drifted"]}
    assert drifted[email(2)]["markers_missing"] == ["VIP"]
    assert drifted[email(2)]["fields"] == {"FNAME": {"delivered": "First2", "platform": "Edited"}}
    assert drifted[email(1)]["markers_extra"] == ["VIP"]
    assert set(drifted) == {email(1), email(2)}
    assert {p["email"]: p["status"] for p in report["status_changes"]} == {
        email(4): "archived",
        email(8): "unsubscribed",
    }
    assert [p["email"] for p in report["missing"]] == [email(6)]
    human = op("exports", "verify", "news", check=False)
    assert human.returncode == DRIFT_FOUND
    assert f'{email(2)} (p002): marker missing: VIP; FNAME "First2" delivered, "Edited" at the platform' in human.stdout

    before = len(sandbox.requests_log)
    repaired = json.loads(op("exports", "run", "news", "--repair", "--json").stdout)
    run = repaired["run"]
    assert run["status"] == "succeeded" and run["plan"]["repair"] == 1 and run["counts"]["updated"] == 2
    writes = [(m, p) for m, p in sandbox.requests_log[before:] if m != "GET"]
    assert not any(subscriber_hash(email(i)) in p for i in (4, 6, 8) for _, p in writes)
    assert mc.tags(2) == {"VIP", "Newsletter"} and mc.member(2)["merge_fields"]["FNAME"] == "First2"
    assert mc.tags(1) == {"Newsletter"}
    assert mc.member(4)["status"] == "archived" and mc.member(8)["status"] == "unsubscribed"
    assert (
        requests.get(f"{mc.base}/lists/{mc.audience}{mc.member_path(6)}", auth=mc.auth, timeout=10).status_code == 404
    )
    shown = json.loads(op("runs", "show", str(run["id"]), "--json").stdout)
    assert shown["plan"]["repair"] == 1

    # What segport may not touch is still reported, as known: verify recorded it, so it no longer
    # counts and a monitoring check goes green; nobody is resubscribed or re-created.
    code, after = verify(op)
    assert code == 0 and after["in_sync"] is True and after["drifted"] == [] and len(after["status_changes"]) == 2
    assert all(p["known"] for p in after["status_changes"] + after["missing"]) and after["known"] == 3
    assert after["new"] == 0 and [p["email"] for p in after["missing"]] == [email(6)]
    human = op("exports", "verify", "news", check=False)
    assert human.returncode == 0 and "in sync, 3 known status changes (reported before; not counted)" in human.stdout
    assert f"{email(8)} (p008): now unsubscribed (known)" in human.stdout
    assert f"{email(6)} (p006): not at the platform (known)" in human.stdout
    mc.call("PATCH", mc.member_path(10), {"status": "unsubscribed"})  # a new change counts again
    code, again = verify(op)
    assert code == DRIFT_FOUND and again["new"] == 1 and again["known"] == 3
    assert [p["email"] for p in again["status_changes"] if not p["known"]] == [email(10)]
    assert mc.member(8)["status"] == "unsubscribed" and mc.member(10)["status"] == "unsubscribed"
    assert op.run_json("news")["counts"]["updated"] == 0  # the delta run after a repair has nothing to send


def test_verify_before_any_delivery_checks_the_platform_and_says_so(
    tmp_path: Path, sandbox: MailchimpSandbox, database_url: str | None
) -> None:
    op = setup(tmp_path, sandbox, database_url, run=False)
    before = len(sandbox.requests_log)
    code, report = verify(op)
    assert code == 0 and report["checked"] == 0 and report["requests"] > 0  # the run's pre-flight, creating nothing
    assert all(method == "GET" for method, _ in sandbox.requests_log[before:])
    human = op("exports", "verify", "news")
    assert "verify news: nothing delivered yet: nobody to compare (pre-flight checks passed)" in human.stdout
    sandbox.rotate_key()
    refused = op("exports", "verify", "news", check=False)
    assert refused.returncode == 8 and "error:" in refused.stderr  # the platform refused the credentials


def test_every_nth_scheduled_run_verifies_and_repairs_first(
    tmp_path: Path, sandbox: MailchimpSandbox, database_url: str | None
) -> None:
    op = setup(tmp_path, sandbox, database_url)
    mc = Platform(sandbox)
    assert "verify_every: off\n" in op("exports", "show", "news").stdout  # never set: not Python's None
    edited = json.loads(op("exports", "edit", "news", "--verify-every", "2", "--json").stdout)
    assert edited["verify_every"] == 2
    ws = Workspace.open(tmp_path / "ws", user="ada", database_url=database_url)
    try:
        repairs = []
        for _ in range(4):
            mc.call("POST", mc.member_path(2) + "/tags", {"tags": [{"name": "VIP", "status": "inactive"}]})
            assert [r.status for r in ws.fire("export:news")] == ["succeeded"]
            runs = ws.list_runs("news", limit=2)
            repairs.append(runs[1].plan is not None and runs[1].plan.get("repair") == 1)
            assert ("VIP" in mc.tags(2)) is repairs[-1]  # only a repair puts the tag back; a delta run never
        assert repairs == [False, True, False, True]
        scheduled = [r for r in ws.list_runs("news") if r.trigger == "schedule"]
        assert len(scheduled) == 6  # four scheduled runs, two of them after a repair run
    finally:
        ws.close()
    assert "verify_every: 2\n" in op("exports", "show", "news").stdout
    op("exports", "edit", "news", "--verify-every", "0")
    assert json.loads(op("exports", "show", "news", "--json").stdout)["verify_every"] is None
    assert "verify_every: off\n" in op("exports", "show", "news").stdout
