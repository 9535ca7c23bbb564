"""The API's flow over both stores: an admin connects Mailchimp (the sandbox) and shares it; a
contributor defines a segment, saves an export, runs it through the API (202), follows the run to its
end and reads its rejects; the audience at the platform is exactly the segment."""

from __future__ import annotations

import time
from typing import Any, Iterator

import pytest
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator

from segport import Registry, Workspace, schemas
from segport.plugins import make_manager
from segport.registry import set_default_registry
from segport.web import create_app
from segport_mailchimp import MailchimpDestination
from segport_mailchimp.sandbox import MailchimpSandbox

FAKE = "fake3@shop.segport-test.net"  # an address the platform refuses ("looks fake or invalid")
PEOPLE = [f"person{i}@shop.segport-test.net" for i in range(6)]


@pytest.fixture
def mailchimp() -> Iterator[MailchimpSandbox]:
    registry = Registry.from_plugins([MailchimpDestination])
    set_default_registry(registry)
    try:
        with MailchimpSandbox(seed=17) as sandbox:
            yield sandbox
    finally:
        set_default_registry(None)


@pytest.fixture
def api(tmp_path: Any, database_url: str | None, mailchimp: MailchimpSandbox) -> Iterator[tuple[TestClient, dict]]:
    home = tmp_path / "ws"
    with Workspace.create(home, "ada", database_url=database_url, pm=make_manager(autoload=False)) as ws:
        ws.add_user("carl", "contributor")
        tokens = {}
        for user in ("ada", "carl"):
            ws.context.user_name = user
            tokens[user] = {"Authorization": f"Bearer {ws.create_token('flow')[1]}"}
    with TestClient(create_app(home, database_url=database_url), follow_redirects=False) as client:
        yield client, tokens


def follow(client: TestClient, location: str, headers: dict[str, str]) -> dict[str, Any]:
    """Read a run's record until it ends (the server runs it in a thread)."""
    for _ in range(600):
        record = client.get(location, headers=headers).json()
        if record["status"] != "running":
            return record
        time.sleep(0.05)
    raise AssertionError(f"the run at {location} did not end: {record}")


def test_a_contributors_run_through_the_api_lands_exactly(
    api: tuple[TestClient, dict[str, dict[str, str]]], mailchimp: MailchimpSandbox
) -> None:
    client, tokens = api
    ada, carl = tokens["ada"], tokens["carl"]
    added = client.post(
        "/api/v1/connections",
        headers=ada,
        json={
            "name": "Newsletter",
            "type": "mailchimp",
            "config": mailchimp.demo_connection(),
            "share": "contributors",
            "agree_privacy": True,
        },
    )
    assert added.status_code == 201, added.text
    assert added.json()["secrets"] == ["api_key"] and mailchimp.api_key not in added.text
    rows = ["id,email,first_name"] + [f"p{i},{email},F{i}" for i, email in enumerate(PEOPLE)] + [f"p9,{FAKE},Fake"]
    loaded = client.post("/api/v1/profiles", headers={**ada, "Content-Type": "text/csv"}, content="\n".join(rows))
    assert loaded.status_code == 200 and loaded.json()["added"] == 7, loaded.text

    assert client.get("/api/v1/connections", headers=carl).json()["items"] == [
        {"name": "Newsletter", "type": "mailchimp"}
    ]
    count = client.get("/api/v1/segments/count", params={"where": "email is not empty"}, headers=carl).json()
    assert count["count"] == 7
    segment = client.post("/api/v1/segments", headers=carl, json={"name": "All", "where": "email is not empty"})
    assert segment.status_code == 201 and segment.json()["members"] == 7
    export = {
        "name": "news",
        "connection": "Newsletter",
        "segments": ["All"],
        "email_field": "email",
        "mapping": {"FNAME": "first_name"},
        "options": mailchimp.demo_export_options(),
    }
    saved = client.post("/api/v1/exports", headers=carl, json=export)
    assert saved.status_code == 201, saved.text
    assert mailchimp.members() == []  # saving sends nothing

    plan = client.post("/api/v1/exports/news/dry-run?records=3", headers=carl)
    assert plan.status_code == 200 and plan.json()["status"] == "planned", plan.text
    assert plan.json()["plan"]["created"] == 7 and len(plan.json()["records"]) >= 3
    assert mailchimp.members() == []  # a dry run sends nothing

    started = client.post("/api/v1/exports/news/runs", headers=carl, json={})
    assert started.status_code == 202, started.text
    run_id = started.json()["run_id"]
    assert started.headers["location"] == f"/api/v1/runs/{run_id}"
    record = follow(client, started.headers["location"], carl)
    Draft202012Validator(schemas.load("run-record")).validate(record)
    assert record["status"] == "succeeded" and record["trigger"] == "api" and record["user"] == "carl"
    assert record["counts"]["created"] == 6 and record["counts"]["rejected"] == 1
    assert sorted(m.email for m in mailchimp.members()) == sorted(PEOPLE)
    assert {m.fields.get("FNAME") for m in mailchimp.members()} == {f"F{i}" for i in range(6)}

    rejects = client.get(f"/api/v1/runs/{run_id}/rejects", headers=carl).json()
    assert rejects["total"] == 1 and rejects["rejects"][0]["email"] == FAKE
    assert "fake" in rejects["rejects"][0]["reason"]
    listed = client.get(
        "/api/v1/runs", params={"export": "news", "trigger": "api", "status": "succeeded"}, headers=carl
    ).json()
    assert [run["id"] for run in listed["items"]] == [run_id] and listed["total"] == 1
    last = client.get("/api/v1/exports", headers=carl).json()["items"][0]["last_run"]
    assert last["id"] == run_id and last["status"] == "succeeded"
