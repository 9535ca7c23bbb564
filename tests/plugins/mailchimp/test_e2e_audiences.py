"""End to end: ``segport connections audiences`` in a subprocess against the Mailchimp sandbox.

An admin and a contributor pick the audience by name from what the account holds (``GET /lists``),
and the id listed is the one an export takes; a private connection's audiences stay the admins'.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest

from segport.testing.files import write_rows
from segport.testing.operator import Operator
from segport_mailchimp.sandbox import MailchimpSandbox

pytestmark = pytest.mark.e2e


@pytest.fixture
def sandbox() -> Iterator[MailchimpSandbox]:
    with MailchimpSandbox(seed=5) as server:
        yield server


def as_user(op: Operator, user: str) -> Operator:
    other = Operator(op.home, user)
    other.env = {**op.env, "SEGPORT_USER": user}
    return other


def test_audiences_listed_by_name_are_the_ids_exports_take(
    tmp_path: Path, sandbox: MailchimpSandbox, database_url: str | None
) -> None:
    op = Operator.init(tmp_path / "ws", database_url=database_url)
    op("users", "add", "carl", "--role", "contributor")
    op("users", "add", "vera", "--role", "viewer")
    config = json.dumps(sandbox.demo_connection())
    op("connections", "add", "mc", "--type", "mailchimp", "--config", config, "--agree-privacy",
       "--share", "contributors")  # fmt: skip
    op("connections", "add", "mc-admins", "--type", "mailchimp", "--config", config, "--agree-privacy")
    audience = sandbox.demo_export_options()["audience_id"]
    sandbox.add_member("already@shop.segport-test.net")  # subscribed before segport
    sandbox.add_member("gone@shop.segport-test.net", status="unsubscribed")

    listed = json.loads(op("connections", "audiences", "mc", "--json").stdout)
    assert listed == [{"id": audience, "name": "Sandbox audience", "member_count": 1}]  # subscribed members only
    human = op("connections", "audiences", "mc").stdout.splitlines()
    assert human[0].split() == ["ID", "NAME", "MEMBER_COUNT"] and human[1].split() == [audience, "Sandbox",
                                                                                        "audience", "1"]  # fmt: skip

    carl = as_user(op, "carl")
    assert json.loads(carl("connections", "audiences", "mc", "--json").stdout) == listed
    refused = carl("connections", "audiences", "mc-admins", check=False)
    assert refused.returncode == 6 and refused.stdout == ""
    assert refused.stderr.startswith("error: user 'carl' (contributor) may not connections use 'mc-admins'")
    viewer = as_user(op, "vera")("connections", "audiences", "mc", "--json", check=False)
    assert viewer.returncode == 6 and json.loads(viewer.stdout)["error"]["status"] == "PERMISSION_DENIED"

    # the contributor's export takes the id they picked, and lands there
    rows = [["p1", "new@shop.segport-test.net", "gold"], ["p2", "other@shop.segport-test.net", "basic"]]
    op("profiles", "load", str(write_rows(tmp_path / "p.csv", ["id", "email", "tier"], rows)))
    op("segments", "define", "VIP", "--where", "tier = 'gold'")
    carl("exports", "add", "picked", "--connection", "mc", "--segment", "VIP", "--email", "email",
         "--option", f"audience_id={listed[0]['id']}")  # fmt: skip
    assert carl.run_json("picked")["status"] == "succeeded"
    after = json.loads(op("connections", "audiences", "mc", "--json").stdout)
    assert after == [{"id": audience, "name": "Sandbox audience", "member_count": 2}]
    calls = [path for method, path in sandbox.requests_log if method == "GET" and path.endswith("/lists")]
    assert calls, "the listing asks GET /3.0/lists"
