"""Drift at Campaign Monitor, end to end: ``exports verify`` finds it, ``exports run --repair`` puts back only it.

The drift is made through Campaign Monitor's own API, as a user of the list would make it: a custom
field and the name edited, a segment option cleared, a subscriber unsubscribed, another deleted
(docs/sandboxes.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests

from segport.testing.files import write_keys, write_rows
from segport.testing.operator import Operator
from segport_campaignmonitor.sandbox import CampaignMonitorSandbox

pytestmark = pytest.mark.e2e
DRIFT_FOUND = 16


@pytest.fixture
def sandbox() -> Iterator[CampaignMonitorSandbox]:
    with CampaignMonitorSandbox(seed=6) as server:
        yield server


def email(i: int) -> str:
    return f"person{i}@shop.segport-test.net"


class Platform:
    """A Campaign Monitor user's hands on the list: the public API, nothing of segport."""

    def __init__(self, sandbox: CampaignMonitorSandbox) -> None:
        self.base, self.list_id = sandbox.api_base_url, sandbox.list_id
        self.auth = (sandbox.api_key, "x")

    def call(self, method: str, path: str, body: Any = None, **params: str) -> Any:
        answer = requests.request(
            method, f"{self.base}{path}.json", json=body, params=params, auth=self.auth, timeout=10
        )
        assert answer.status_code < 300, answer.text
        return answer.json() if answer.content else None

    def subscriber(self, i: int) -> dict[str, Any]:
        found: dict[str, Any] = self.call("GET", f"/subscribers/{self.list_id}", email=email(i))
        return found

    def values(self, i: int, name: str) -> set[str]:
        return {str(f["Value"]) for f in self.subscriber(i)["CustomFields"] if f["Key"].strip("[]") == name}


def setup(tmp_path: Path, sandbox: CampaignMonitorSandbox, database_url: str | None) -> Operator:
    cm = Platform(sandbox)
    cm.call("POST", f"/lists/{cm.list_id}/customfields", {"FieldName": "City", "DataType": "Text"})
    op = Operator.init(tmp_path / "ws", database_url=database_url)
    header = ["id", "email", "first_name", "last_name", "tier", "city"]
    rows = (
        [f"p{i:03d}", email(i), f"First{i}", f"Last{i}", "gold" if i % 2 == 0 else "basic", f"City{i}"]
        for i in range(20)
    )
    op("profiles", "load", str(write_rows(tmp_path / "profiles.csv", header, rows)))
    op("segments", "define", "VIP", "--where", "tier = 'gold'")
    op("segments", "load", "Newsletter", str(write_keys(tmp_path / "news.txt", (f"p{i:03d}" for i in range(10)))))
    op(
        "connections",
        "add",
        "cm",
        "--type",
        "campaignmonitor",
        "--config",
        json.dumps(sandbox.demo_connection()),
        "--agree-privacy",
    )
    op(
        "exports",
        "add",
        "news",
        "--connection",
        "cm",
        "--email",
        "email",
        "--segment",
        "VIP",
        "--segment",
        "Newsletter",
        "--map",
        "Name=first_name+last_name",
        "--map",
        "City=city",
        "--option",
        f"list_id={sandbox.list_id}",
        "--option",
        "resubscribe=true",
    )
    assert op.run_json("news")["status"] == "succeeded"
    return op


def verify(op: Operator) -> tuple[int, dict[str, Any]]:
    result = op("exports", "verify", "news", "--json", check=False)
    assert result.returncode in (0, DRIFT_FOUND), result.stderr
    return result.returncode, json.loads(result.stdout)


def test_edited_fields_and_a_cleared_marker_are_put_back_while_the_unsubscribed_and_deleted_stay(
    tmp_path: Path, sandbox: CampaignMonitorSandbox, database_url: str | None
) -> None:
    op = setup(tmp_path, sandbox, database_url)
    cm = Platform(sandbox)
    code, report = verify(op)
    assert code == 0 and report["in_sync"] is True and report["checked"] == 15 and report["unchanged"] == 15

    # At Campaign Monitor: person 2's city and name are edited and its VIP option cleared; person 4
    # unsubscribes; person 6 is deleted. (The export resubscribes on its runs: a repair never does.)
    body = {
        "EmailAddress": email(2),
        "Name": "Someone Else",
        "CustomFields": [{"Key": "City", "Value": "Elsewhere"}, {"Key": "Segments", "Value": "VIP", "Clear": True}],
        "ConsentToTrack": "Unchanged",
    }
    cm.call("PUT", f"/subscribers/{cm.list_id}", body, email=email(2))
    cm.call("POST", f"/subscribers/{cm.list_id}/unsubscribe", {"EmailAddress": email(4)})
    cm.call("DELETE", f"/subscribers/{cm.list_id}", email=email(6))
    assert cm.values(2, "Segments") == {"Newsletter"}

    code, report = verify(op)
    assert code == DRIFT_FOUND and report["checked"] == 15
    assert [p["email"] for p in report["drifted"]] == [email(2)]
    person = report["drifted"][0]
    assert person["markers_missing"] == ["VIP"]
    assert person["fields"] == {
        "City": {"delivered": "City2", "platform": "Elsewhere"},
        "Name": {"delivered": "First2 Last2", "platform": "Someone Else"},
    }
    assert {p["email"]: p["status"] for p in report["status_changes"]} == {
        email(4): "unsubscribed",
        email(6): "deleted",
    }

    before = len(sandbox.requests_log)
    repaired = json.loads(op("exports", "run", "news", "--repair", "--json").stdout)
    run = repaired["run"]
    assert run["status"] == "succeeded" and run["plan"]["repair"] == 1 and run["counts"]["updated"] == 1
    imports = [p for m, p in sandbox.requests_log[before:] if p.endswith("/import.json")]
    assert len(imports) == 1
    assert cm.values(2, "Segments") == {"VIP", "Newsletter"} and cm.values(2, "City") == {"City2"}
    assert cm.subscriber(2)["Name"] == "First2 Last2"
    assert cm.subscriber(4)["State"] == "Unsubscribed" and cm.subscriber(6)["State"] == "Deleted"

    code, after = verify(op)  # reported before and recorded: known, not counted; nobody resubscribed
    assert code == 0 and after["in_sync"] is True and after["drifted"] == [] and len(after["status_changes"]) == 2
    assert all(p["known"] for p in after["status_changes"]) and after["known"] == 2 and after["new"] == 0
    assert cm.subscriber(4)["State"] == "Unsubscribed" and cm.subscriber(6)["State"] == "Deleted"
