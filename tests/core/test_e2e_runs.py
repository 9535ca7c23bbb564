"""End to end: runs you can read, as an operator does it with the real CLI against the Mailchimp sandbox.

Absolute reject paths from a relative workspace, ``runs rejects`` with Mailchimp's reasons, one reject
line per person per reason across runs, ``runs prune`` and the retention setting; both stores.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import pytest
from sqlalchemy import update

from segport.store import open_store
from segport.store.base import SQLStore
from segport.store.schema import runs
from segport.testing.files import write_rows
from segport.testing.operator import Operator
from segport_mailchimp.sandbox import MailchimpSandbox

pytestmark = pytest.mark.e2e
FAKE = (2, 5)  # addresses the sandbox refuses as Mailchimp does ("looks fake or invalid")


@pytest.fixture
def sandbox() -> Iterator[MailchimpSandbox]:
    server = MailchimpSandbox(seed=5)
    server.start()
    yield server
    server.stop()


def age_runs(home: Path, database_url: str | None, run_ids: list[int], days: int) -> None:
    """Make runs look ``days`` old, as the store holds them (no clock is faked, nothing sleeps)."""
    started = (datetime.now(timezone.utc) - timedelta(days=days)).isoformat(timespec="seconds")
    store = open_store(database_url, home)
    assert isinstance(store, SQLStore)
    try:
        with store.transaction():
            store.db.execute(update(runs).where(runs.c.id.in_(run_ids)).values(started_at=started))
    finally:
        store.close()


def test_runs_rejects_prints_reasons_and_runs_prune_removes_old_runs(
        tmp_path: Path, sandbox: MailchimpSandbox, database_url: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the workspace is named relative to the folder the commands start from
    op = Operator.init(Path("ws"), database_url=database_url)
    people = write_rows(tmp_path / "people.csv", ["id", "email", "first_name"], (
        [f"p{i:03d}", f"fake{i}@shop.segport-test.net" if i in FAKE else f"person{i}@shop.segport-test.net", f"F{i}"]
        for i in range(12)))
    op("profiles", "load", str(people))
    op("segments", "define", "All", "--where", "email is not empty")
    op("connections", "add", "mc", "--type", "mailchimp", "--config", json.dumps(sandbox.demo_connection()),
       "--agree-privacy")
    audience = sandbox.demo_export_options()["audience_id"]
    op("exports", "add", "news", "--connection", "mc", "--segment", "All", "--email", "email",
       "--map", "FNAME=first_name", "--option", f"audience_id={audience}")

    first = op.run_json("news")
    assert first["counts"]["rejected"] == 2 and first["counts"]["created"] == 10
    assert first["reject_file"] == str(tmp_path / "ws" / "rejects" / f"run-{first['id']}.jsonl")
    human = op("runs", "rejects", str(first["id"])).stdout
    assert f"reject file: {first['reject_file']}" in human
    for i in FAKE:
        assert f"p{i:03d}" in human and f"fake{i}@shop.segport-test.net" in human
    assert sum("looks fake or invalid" in line for line in human.splitlines()) == 2

    second = op.run_json("news", "--full")  # the same two people, refused for the same reason
    assert second["counts"]["rejected"] == 2 and second["reject_file"] is None
    again = json.loads(op("runs", "rejects", str(second["id"]), "--json").stdout)
    assert again["total"] == 2 and {r["reported_in"] for r in again["rejects"]} == {first["id"]}
    assert all("looks fake or invalid" in (r["reason"] or "") for r in again["rejects"])
    assert f"already in run {first['id']}" in op("runs", "rejects", str(second["id"])).stdout

    age_runs(Path("ws"), database_url, [first["id"], second["id"]], days=120)
    third = op.run_json("news")  # a delta run: nothing new to send
    assert third["counts"]["created"] == third["counts"]["updated"] == 0
    dry = json.loads(op("runs", "prune", "--older-than", "90d", "--dry-run", "--json").stdout)
    assert (dry["runs"], dry["files"], dry["run_ids"]) == (2, 1, [first["id"], second["id"]])
    assert op("runs", "prune", "--older-than", "90d", check=False).returncode == 2  # no terminal: --yes needed
    pruned = json.loads(op("runs", "prune", "--older-than", "90d", "--yes", "--json").stdout)
    assert (pruned["runs"], pruned["outcomes"], pruned["files"]) == (2, dry["outcomes"], 1) and pruned["bytes"] > 0
    assert not Path(first["reject_file"]).exists()
    assert [r["id"] for r in json.loads(op("runs", "list", "--json").stdout)] == [third["id"]]
    gone = op("runs", "rejects", str(first["id"]), check=False)
    assert gone.returncode == 5 and f"unknown run {first['id']}" in gone.stderr
    before = sandbox.state()["lists"][audience]["members"]
    fourth = op.run_json("news")  # the sync state survived the prune: still nothing to send
    assert fourth["counts"]["created"] == fourth["counts"]["updated"] == 0
    assert sandbox.state()["lists"][audience]["members"] == before

    op("runs", "retention", "30d")
    assert json.loads(op("runs", "retention", "--json").stdout) == {"retention": "30d"}
    age_runs(Path("ws"), database_url, [third["id"]], days=40)
    fifth = op.run_json("news")  # the retention setting prunes as the run ends
    assert [r["id"] for r in json.loads(op("runs", "list", "--json").stdout)] == [fifth["id"], fourth["id"]]
