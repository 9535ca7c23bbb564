"""End to end: ``segport connections audiences`` in a subprocess against the Campaign Monitor sandbox.

The lists of the key's clients are listed by name (no member counts: Campaign Monitor gives them one
list at a time), the id listed is the one an export takes, and a private connection's lists stay the
admins'.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest

from segport.testing.files import write_rows
from segport.testing.operator import Operator
from segport_campaignmonitor.sandbox import CampaignMonitorSandbox

pytestmark = pytest.mark.e2e


@pytest.fixture
def sandbox() -> Iterator[CampaignMonitorSandbox]:
    with CampaignMonitorSandbox(seed=5) as server:
        yield server


def as_user(op: Operator, user: str) -> Operator:
    other = Operator(op.home, user)
    other.env = {**op.env, "SEGPORT_USER": user}
    return other


def test_lists_listed_by_name_are_the_ids_exports_take(
    tmp_path: Path, sandbox: CampaignMonitorSandbox, database_url: str | None
) -> None:
    op = Operator.init(tmp_path / "ws", database_url=database_url)
    op("users", "add", "carl", "--role", "contributor")
    op("users", "add", "vera", "--role", "viewer")
    config = json.dumps(sandbox.demo_connection())
    op("connections", "add", "cm", "--type", "campaignmonitor", "--config", config, "--agree-privacy",
       "--share", "contributors")  # fmt: skip
    op("connections", "add", "cm-admins", "--type", "campaignmonitor", "--config", config, "--agree-privacy")
    list_id = sandbox.demo_export_options()["list_id"]

    listed = json.loads(op("connections", "audiences", "cm", "--json").stdout)
    assert listed == [{"id": list_id, "name": "Sandbox list", "member_count": None}]
    human = op("connections", "audiences", "cm").stdout.splitlines()
    assert human[1].split() == [list_id, "Sandbox", "list", "-"]

    carl = as_user(op, "carl")
    assert json.loads(carl("connections", "audiences", "cm", "--json").stdout) == listed
    refused = carl("connections", "audiences", "cm-admins", check=False)
    assert refused.returncode == 6 and refused.stdout == ""
    assert refused.stderr.startswith("error: user 'carl' (contributor) may not connections use 'cm-admins'")
    viewer = as_user(op, "vera")("connections", "audiences", "cm", check=False)
    assert viewer.returncode == 6 and viewer.stderr.startswith("error: user 'vera' (viewer)")

    rows = [["p1", "new@shop.segport-test.net", "gold"], ["p2", "other@shop.segport-test.net", "basic"]]
    op("profiles", "load", str(write_rows(tmp_path / "p.csv", ["id", "email", "tier"], rows)))
    op("segments", "define", "VIP", "--where", "tier = 'gold'")
    carl("exports", "add", "picked", "--connection", "cm", "--segment", "VIP", "--email", "email",
         "--option", f"list_id={listed[0]['id']}")  # fmt: skip
    run = carl.run_json("picked")
    assert run["status"] == "succeeded" and run["counts"]["created"] == 1
    clients = [path for method, path in sandbox.requests_log if method == "GET" and path.endswith("/lists.json")]
    assert clients, "the listing asks GET /clients/{clientid}/lists.json"
