"""The API's data and admin routes: uploads, segments by keys and by filter, users and invites, tokens,
the schedule and the audit."""

from __future__ import annotations

import gzip
import json
import threading
from typing import Any

from fastapi.testclient import TestClient

from segport.web import create_app

from .api_world import World, world_fixture  # noqa: F401 - the module's fixture


def test_profiles_upload_as_the_body_or_multipart(world: World) -> None:
    jsonl = "\n".join(json.dumps({"id": f"j{i}", "email": f"j{i}@example.com"}) for i in range(3))
    body = world.call(
        "carl", "POST", "/api/v1/profiles", content=jsonl, headers={"Content-Type": "application/x-ndjson"}
    )
    assert body.status_code == 200 and body.json()["added"] == 3, body.text
    csv = gzip.compress(b"id,email,first_name\nj0,j0@example.com,Jo\nm1,m1@example.com,Mo\n")
    form = world.call("carl", "POST", "/api/v1/profiles", files={"file": ("people.csv.gz", csv, "application/gzip")})
    assert form.status_code == 200, form.text
    assert (form.json()["added"], form.json()["updated"]) == (1, 1)
    shown = world.call("vera", "GET", "/api/v1/profiles?where=id%20%3D%20%27j0%27").json()
    assert shown["items"] == [{"key": "j0", "attributes": {"id": "j0", "email": "j0@example.com", "first_name": "Jo"}}]
    unnamed = world.call(
        "carl", "POST", "/api/v1/profiles", content=b"id,email\n", headers={"Content-Type": "text/plain"}
    )
    assert unnamed.status_code == 422 and unnamed.json()["param"] == "format"
    ragged = world.call("carl", "POST", "/api/v1/profiles?format=csv", content=b"id,email\nq1\n")
    assert ragged.status_code == 422 and ragged.json()["code"] == "INPUT_ERROR"
    assert ragged.json()["detail"].startswith("request body: line 2 has 1 fields")
    named = world.call("carl", "POST", "/api/v1/profiles", files={"file": ("../../etc/people.csv", b"id,email\nq1\n")})
    assert named.status_code == 422 and named.json()["detail"].startswith("people.csv: line 2")
    assert not list(world.home.glob(".upload-*"))  # the staged files are gone
    removed = world.call("carl", "DELETE", "/api/v1/profiles", json={"where": "id in ('j1', 'j2')"}).json()
    assert removed["removed"] == 2
    assert world.call("vera", "GET", "/api/v1/profiles/count?where=id%20%3D%20%27j1%27").json()["profiles"] == 0


def test_segments_by_keys_and_a_live_count(world: World) -> None:
    members = world.call("carl", "PUT", "/api/v1/segments/picked/members", json={"keys": ["p1", "p2", "nobody"]})
    assert members.json() == {"segment": "picked", "members": 2, "unknown_keys": 1}
    listed = world.call("vera", "GET", "/api/v1/segments?search=pick").json()
    assert [(s["name"], s["members"]) for s in listed["items"]] == [("picked", 2)]
    count = world.call("vera", "GET", "/api/v1/segments/count", params={"where": "first_nam = 'First1'"}).json()
    assert count["count"] == 0 and count["unknown_attributes"] == {"first_nam": ["first_name"]}
    bad = world.call("vera", "GET", "/api/v1/segments/count", params={"where": "first_name =="})
    assert bad.status_code == 422 and bad.json()["code"] == "INPUT_ERROR"
    used = world.call("carl", "DELETE", "/api/v1/segments/All")  # e-team exports it
    assert used.status_code >= 400 and "e-team" in used.json()["detail"]


def test_invite_links_point_at_the_public_address(world: World) -> None:
    local = world.call("ada", "POST", "/api/v1/users/carl/invite").json()
    assert local["url"].startswith("http://testserver/invite/") and local["expires_in_seconds"] == 7 * 86400
    with TestClient(create_app(world.home, public_url="https://console.example.org/")) as public:
        link = public.post(
            "/api/v1/users/carl/invite", headers=world.headers("ada"), json={"expires_in_seconds": 3600}
        ).json()
    assert link["url"].startswith("https://console.example.org/invite/") and link["expires_in_seconds"] == 3600
    page = world.client.get(link["url"].removeprefix("https://console.example.org"))
    assert page.status_code == 200 and "Set password" in page.text
    role = world.call("ada", "PATCH", "/api/v1/users/vera", json={"role": "admin"})
    assert role.json()["role"] == "admin"
    assert world.call("ada", "PATCH", "/api/v1/users/vera", json={"role": "viewer"}).json()["role"] == "viewer"
    assert world.call("ada", "PATCH", "/api/v1/users/vera", json={"role": "owner"}).status_code == 400


def test_tokens_are_shown_once_and_revoked(world: World) -> None:
    made = world.call("carl", "POST", "/api/v1/tokens", json={"name": "ci", "expires_in_seconds": 3600}).json()
    token = made["token"]
    assert made["name"] == "ci" and made["user"] == "carl" and made["expires_at"]
    assert world.client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).json()["name"] == "carl"
    names = [t["name"] for t in world.call("carl", "GET", "/api/v1/tokens").json()["items"]]
    assert "ci" in names and token not in json.dumps(names)
    others = world.call("carl", "GET", "/api/v1/tokens?every_user=true")
    assert others.status_code == 403
    revoked = world.call("ada", "DELETE", "/api/v1/tokens/ci?user=carl")
    assert revoked.json()["revoked"] == "token"
    assert world.client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_the_schedule_and_the_audit(world: World) -> None:
    assert world.call("ada", "PUT", "/api/v1/schedule", json={"cron": "30 6 * * 1-5", "timezone": "Europe/Paris"})
    shown = world.call("vera", "GET", "/api/v1/schedule?count=2").json()
    assert shown["refresh"]
    refresh = next(row for row in shown["schedules"] if row["job"] == "refresh")
    assert len(refresh["next_runs"]) == 2 and refresh["timezone"] == "Europe/Paris"
    assert world.call("ada", "PUT", "/api/v1/schedule", json={"cron": "every day"}).status_code == 422
    world.call("carl", "PATCH", "/api/v1/exports/e-team", json={"enabled": True})
    audit = world.call("ada", "GET", "/api/v1/audit", params={"user": "ada", "action": "schedule"}).json()
    assert audit["total"] >= 1 and all(e["user"] == "ada" for e in audit["items"])
    assert audit["items"][0]["client"] == "testclient", audit["items"]  # the request address, not the CLI null
    since = world.call("ada", "GET", "/api/v1/audit?since=not-a-time")
    assert since.status_code == 422 and since.json()["param"] == "since"


class GatedCalls(list[Any]):
    """The memory platform's call log, holding every call after the first until the gate opens."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()

    def append(self, call: Any) -> None:
        super().append(call)
        if len(self) > 1:
            assert self.gate.wait(30), "the test never opened the gate"


def test_a_run_going_on_shows_its_progress(world: World) -> None:
    calls = world.platform.calls = GatedCalls()
    try:
        started = world.call("carl", "POST", "/api/v1/exports/run-carl/runs")
        assert started.status_code == 202, started.text
        location = started.headers["location"]
        record: dict[str, Any] = {}
        for _ in range(600):  # until the first batch (4 of the profiles) is committed
            record = world.call("carl", "GET", location).json()
            if sum(record["counts"].values()):
                break
            threading.Event().wait(0.05)
        assert record["status"] == "running" and sum(record["counts"].values()) == 4, record
        assert record["finished_at"] is None
        again = world.call("carl", "POST", "/api/v1/exports/run-carl/runs")
        assert again.status_code == 409 and again.json()["code"] == "ALREADY_RUNNING"
    finally:
        calls.gate.set()
    for _ in range(600):
        record = world.call("carl", "GET", location).json()
        if record["status"] != "running":
            break
        threading.Event().wait(0.05)
    assert record["status"] == "succeeded" and sum(record["counts"].values()) == sum(map(len, calls)) > 4
