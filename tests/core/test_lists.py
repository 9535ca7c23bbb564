"""Pages of the lists (exports with their last run, runs, audit, connections, segments, users), both stores:
the items of each page, the totals they are cut from, the filters, and who sees what."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import update

from segport import ConfigError, InputError, PermissionDenied, Workspace
from segport.models import Connection, Page, SharedConnection
from segport.store.schema import audit, segments

KEY = "memory-key-0001"
PRIVATE = ["p-alpha", "p-beta", "p-gamma"]
SHARED = ["s-alpha", "s-beta", "S-Delta", "s-gamma"]  # S-Delta: the search ignores case


@pytest.fixture
def world(ws: Workspace, tmp_path: Path) -> SimpleNamespace:
    """Two connections (private: admins only; shared: contributors too), 3 + 4 exports, runs of some."""
    rows = ["id,email,tier"] + [f"p{i:03d},user{i}@example.com,{'gold' if i % 3 == 0 else 'std'}" for i in range(9)]
    (tmp_path / "people.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    ws.load_profiles(tmp_path / "people.csv")
    ws.define_segment("All", "email is not empty")
    ws.define_segment("Gold", "tier = 'gold'")
    (tmp_path / "keys.txt").write_text("p001\np002\nnobody\n", encoding="utf-8")
    ws.load_segment("Picked", tmp_path / "keys.txt")
    ws.add_connection("private", "memory", {"api_key": KEY}, agree_privacy=True)
    ws.add_connection("shared", "memory", {"api_key": KEY}, share="contributors", agree_privacy=True)
    for names, conn in ((PRIVATE, "private"), (SHARED, "shared")):
        for n, name in enumerate(names):
            ws.add_export(name, connection=conn, segments=["All"], email_field="email",
                          options={"audience_id": "aud1"}, enabled=n != 1, force=True)  # second: disabled
    first = ws.run_export("p-alpha")
    second = ws.run_export("p-alpha", full=True)
    ws.run_export("p-alpha", dry_run=True)  # a dry run is not the last run an export list shows
    shared = ws.run_export("s-alpha")
    return SimpleNamespace(first=first, second=second, shared=shared)


# -- pages ----------------------------------------------------------------------------------------
def test_a_page_says_what_it_holds_and_of_how_many(world: SimpleNamespace, ws: Workspace) -> None:
    page = ws.exports_page(limit=3)
    assert [e.name for e in page.items] == ["S-Delta", "p-alpha", "p-beta"]  # byte order, as every list
    assert (page.total, page.limit, page.offset) == (7, 3, 0)
    assert [e.name for e in ws.exports_page(limit=3, offset=3).items] == ["p-gamma", "s-alpha", "s-beta"]
    assert [e.name for e in ws.exports_page(limit=3, offset=6).items] == ["s-gamma"]
    beyond = ws.exports_page(limit=3, offset=50)
    assert beyond.items == [] and beyond.total == 7
    data = json.loads(json.dumps(ws.exports_page(limit=1).to_dict()))
    assert set(data) == {"items", "total", "limit", "offset"} and data["total"] == 7
    assert data["items"][0]["name"] == "S-Delta" and data["items"][0]["last_run"] is None


@pytest.mark.parametrize("limit, offset, param", [(0, 0, "limit"), (501, 0, "limit"), (10, -1, "offset")])
def test_a_page_out_of_bounds_is_refused(world: SimpleNamespace, ws: Workspace, limit: int, offset: int,
                                         param: str) -> None:
    for call in (ws.exports_page, ws.runs_page, ws.audit_page, ws.connections_page, ws.segments_page, ws.users_page):
        with pytest.raises(InputError) as caught:
            call(limit=limit, offset=offset)
        assert caught.value.param == param


# -- exports --------------------------------------------------------------------------------------
def test_each_export_comes_with_its_last_run(world: SimpleNamespace, ws: Workspace) -> None:
    rows = {e.name: e for e in ws.exports_page(limit=50).items}
    last = rows["p-alpha"].last_run
    assert last is not None and last.id == world.second.id and last.status.value == "succeeded"
    assert last.counts == world.second.counts and last.trigger == "manual" and last.user == "ada"
    assert rows["s-alpha"].last_run is not None and rows["s-alpha"].last_run.id == world.shared.id
    assert rows["p-beta"].last_run is None
    assert rows["p-alpha"].to_dict()["last_run"]["id"] == world.second.id
    assert rows["p-alpha"].export == ws.get_export("p-alpha")


def test_exports_are_filtered_before_the_page_is_cut(world: SimpleNamespace, ws: Workspace) -> None:
    on_shared = ws.exports_page(limit=2, connection="shared")
    assert [e.name for e in on_shared.items] == ["S-Delta", "s-alpha"] and on_shared.total == 4
    disabled = ws.exports_page(enabled=False)
    assert [e.name for e in disabled.items] == ["p-beta", "s-beta"] and disabled.total == 2
    assert ws.exports_page(enabled=True).total == 5
    found = ws.exports_page(search="DEL")
    assert [e.name for e in found.items] == ["S-Delta"] and found.total == 1
    assert ws.exports_page(search="a_p").total == 0  # LIKE's wildcards are plain characters
    assert ws.exports_page(search="%").total == 0
    assert ws.exports_page(connection="shared", enabled=False, search="beta").total == 1
    assert ws.exports_page(connection="nowhere").total == 0


def test_a_detached_export_belongs_to_no_connection_page(world: SimpleNamespace, ws: Workspace) -> None:
    ws.remove_connection("private")
    assert ws.exports_page(connection="private").total == 0
    assert ws.exports_page().total == 7  # still listed for admins, detached


@pytest.mark.parametrize("user", ["carl", "vera"])
def test_non_admins_page_only_the_exports_of_shared_connections(world: SimpleNamespace, act_as: Any,
                                                                user: str) -> None:
    actor = act_as(user)
    page = actor.exports_page(limit=2)
    assert [e.name for e in page.items] == ["S-Delta", "s-alpha"] and page.total == 4  # no private one counted
    assert [e.name for e in actor.exports_page(limit=2, offset=2).items] == ["s-beta", "s-gamma"]
    assert actor.exports_page(connection="private").total == 0
    assert actor.exports_page(search="p-").total == 0
    assert actor.exports_page(enabled=False).total == 1
    text = json.dumps(actor.exports_page().to_dict())
    assert "private" not in text and "p-alpha" not in text


# -- runs -----------------------------------------------------------------------------------------
def test_runs_page_newest_first_with_filters(world: SimpleNamespace, ws: Workspace, act_as: Any) -> None:
    act_as("carl").run_export("s-gamma", trigger="api")
    every = ws.runs_page(limit=50)
    assert every.total == 5 and [r.id for r in every.items] == sorted((r.id for r in every.items), reverse=True)
    assert [r.id for r in ws.runs_page(limit=2, offset=1).items] == [r.id for r in every.items[1:3]]
    assert [r.id for r in ws.runs_page(export="p-alpha").items] == [every.items[2].id, world.second.id,
                                                                     world.first.id]
    planned = ws.runs_page(status="planned")
    assert planned.total == 1 and planned.items[0].export == "p-alpha"
    assert ws.runs_page(status="succeeded").total == 4
    api = ws.runs_page(trigger="api")
    assert api.total == 1 and api.items[0].user == "carl" and api.items[0].export == "s-gamma"
    assert ws.runs_page(user="carl").total == 1 and ws.runs_page(user="ada").total == 4
    assert ws.runs_page(export="p-alpha", status="succeeded", user="ada").total == 2
    assert ws.runs_page(export="nothing").total == 0
    with pytest.raises(InputError, match="unknown run status 'done'") as caught:
        ws.runs_page(status="done")
    assert caught.value.param == "status"


@pytest.mark.parametrize("user", ["carl", "vera"])
def test_non_admins_page_only_the_runs_of_shared_exports(world: SimpleNamespace, act_as: Any, user: str) -> None:
    page = act_as(user).runs_page()
    assert [r.id for r in page.items] == [world.shared.id] and page.total == 1
    assert act_as(user).runs_page(export="p-alpha").total == 0


def test_the_last_run_and_the_runs_page_name_the_reject_file_absolutely(world: SimpleNamespace,
                                                                         ws: Workspace) -> None:
    run = ws.runs_page(limit=1).items[0]
    last = ws.exports_page(search="s-alpha").items[0].last_run
    for shown in (run, last):
        assert shown is not None and (shown.reject_file is None or Path(shown.reject_file).is_absolute())


# -- audit ----------------------------------------------------------------------------------------
def test_audit_page_filters_by_user_action_family_target_and_time(world: SimpleNamespace, ws: Workspace,
                                                                  act_as: Any) -> None:
    with pytest.raises(PermissionDenied):
        act_as("vera").add_user("eve", "viewer")  # a refusal is audited as 'denied'
    everything = ws.audit_page(limit=500)
    assert everything.total == len(everything.items) == len(ws.audit_entries(1000))
    assert [e.id for e in everything.items] == [e.id for e in ws.audit_entries(1000)]
    adds = ws.audit_page(action="exports.add")
    assert adds.total == 7 and {e.target for e in adds.items} == set(PRIVATE + SHARED)
    family = ws.audit_page(action="exports", limit=3)
    assert family.total == 10 and len(family.items) == 3  # 7 exports.add, 3 exports.run (dry runs aside)
    assert {e.action for e in ws.audit_page(action="exports").items} == {"exports.add", "exports.run"}
    assert ws.audit_page(action="export").total == 0  # a family is a whole word before the dot
    segments = ws.audit_page(action="segments")
    assert {e.action for e in segments.items} == {"segments.define", "segments.load"} and segments.total == 3
    denied = ws.audit_page(user="vera")
    assert denied.total == 1 and (denied.items[0].action, denied.items[0].target) == ("denied", "users.add")
    assert ws.audit_page(target="shared").total == 1
    assert ws.audit_page(user="ada", action="connections.add", target="private").total == 1


def test_audit_page_since_a_time(world: SimpleNamespace, ws: Workspace) -> None:
    total = ws.audit_page().total
    private = sum(e.target in PRIVATE for e in ws.audit_page(limit=500).items)
    assert private == 5  # 3 adds, 2 runs of p-alpha
    old = (datetime.now(timezone.utc) - timedelta(days=3)).isoformat(timespec="seconds")
    with ws.store.transaction():
        ws.store.db.execute(update(audit).where(audit.c.target.in_(PRIVATE)).values(at=old))
    two_days_ago = datetime.now(timezone.utc) - timedelta(days=2)
    recent = ws.audit_page(since=two_days_ago.isoformat())
    assert recent.total == total - private and not {e.target for e in recent.items} & set(PRIVATE)
    naive = two_days_ago.replace(tzinfo=None).isoformat()  # no zone: UTC
    assert ws.audit_page(since=naive).total == total - private
    assert ws.audit_page(since=two_days_ago.date().isoformat()).total == total - private
    assert ws.audit_page(since=two_days_ago - timedelta(days=2)).total == total
    assert ws.audit_page(since="2999-01-01").total == 0
    with pytest.raises(InputError, match="invalid time 'yesterday'") as caught:
        ws.audit_page(since="yesterday")
    assert caught.value.param == "since"


def test_only_admins_page_the_audit(world: SimpleNamespace, act_as: Any) -> None:
    for user in ("carl", "vera"):
        with pytest.raises(PermissionDenied):
            act_as(user).audit_page()


# -- connections, users, segments -------------------------------------------------------------------
def test_connections_page_as_each_role(world: SimpleNamespace, ws: Workspace, act_as: Any) -> None:
    ws.add_connection("another", "memory", {"api_key": KEY}, agree_privacy=True)
    page = ws.connections_page(limit=2)
    assert [c.name for c in page.items] == ["another", "private"] and page.total == 3
    assert all(isinstance(c, Connection) for c in page.items)
    assert [c.name for c in ws.connections_page(limit=2, offset=2).items] == ["shared"]
    for user in ("carl", "vera"):
        shown = act_as(user).connections_page()
        assert shown.items == [SharedConnection("shared", "memory")] and shown.total == 1
        assert act_as(user).connections_page(offset=1) == Page([], 1, 50, 1)
        assert shown.to_dict() == {"items": [{"name": "shared", "type": "memory"}], "total": 1, "limit": 50,
                                   "offset": 0}


def test_users_page(world: SimpleNamespace, ws: Workspace, act_as: Any) -> None:
    page = ws.users_page(limit=2)
    assert [u.name for u in page.items] == ["ada", "carl"] and page.total == 3
    viewers = act_as("vera").users_page(role="viewer")
    assert [u.name for u in viewers.items] == ["vera"] and viewers.total == 1
    with pytest.raises(ConfigError, match="unknown role"):
        ws.users_page(role="owner")


def test_segments_page_with_exact_counts(world: SimpleNamespace, ws: Workspace, act_as: Any,
                                         tmp_path: Path) -> None:
    page = ws.segments_page(limit=2)
    assert [(s.name, s.members) for s in page.items] == [("All", 9), ("Gold", 3)] and page.total == 3
    picked = ws.segments_page(offset=2).items
    assert [(s.name, s.members) for s in picked] == [("Picked", 2)]  # 'nobody' has no profile
    assert act_as("vera").segments_page(search="OL").items[0].name == "Gold"
    # a load changes the counts: new profiles, one leaves Gold, 'nobody' now exists
    rows = ["id,email,tier", "p000,user0@example.com,std", "p100,x@example.com,gold", "nobody,n@example.com,std"]
    (tmp_path / "more.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    ws.load_profiles(tmp_path / "more.csv")
    counts = {s.name: s.members for s in ws.segments_page().items}
    assert counts == {"All": 11, "Gold": 3, "Picked": 3}
    assert counts == {s.name: s.members for s in ws.list_segments()}
    ws.remove_profiles(["p003", "p001"])
    assert {s.name: s.members for s in ws.segments_page().items} == {"All": 9, "Gold": 2, "Picked": 2}


def test_member_counts_are_recorded_and_renewed_by_every_change_of_members(world: SimpleNamespace, ws: Workspace,
                                                                          tmp_path: Path) -> None:
    """A count is taken once per catalog version: served as recorded until a write can change members."""
    first = {s.name: s.members for s in ws.segments_page().items}
    assert first == {"All": 9, "Gold": 3, "Picked": 2}
    version = ws.store.catalog_version()
    with ws.store.transaction():  # a recorded count is what the page shows while its version is current
        ws.store.db.execute(update(segments).where(segments.c.name == "All").values(member_count=1234))
    assert {s.name: s.members for s in ws.segments_page().items}["All"] == 1234
    assert {s.name: s.members for s in ws.list_segments()}["All"] == 1234

    def counts_after(change: Any) -> dict[str, int]:
        with ws.store.transaction():  # wrong counts at the current version: each change below must void them
            ws.store.db.execute(update(segments).values(member_count=1234))
        before = ws.store.catalog_version()
        change()
        assert ws.store.catalog_version() > before
        return {s.name: s.members for s in ws.segments_page().items}

    (tmp_path / "one.csv").write_text("id,email,tier\np050,new@example.com,gold\n", encoding="utf-8")
    assert counts_after(lambda: ws.load_profiles(tmp_path / "one.csv")) == {"All": 10, "Gold": 4, "Picked": 2}
    assert counts_after(lambda: ws.remove_profiles(["p050"])) == first
    (tmp_path / "three.txt").write_text("p001\np002\np004\n", encoding="utf-8")
    assert counts_after(lambda: ws.load_segment("Picked", tmp_path / "three.txt"))["Picked"] == 3
    assert counts_after(lambda: ws.define_segment("Gold", "tier = 'std'"))["Gold"] == 6
    assert version < ws.store.catalog_version()
    untouched = ws.store.catalog_version()
    ws.run_export("s-alpha")  # runs, exports and connections change no members
    ws.define_segment("Gold", "tier = 'std'")  # the same expression again
    assert ws.store.catalog_version() == untouched
