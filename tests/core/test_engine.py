"""Tests for the run engine (segport.pipeline.engine, planner, dispatcher) driven through the Workspace API.

Every test runs against the in-memory destination of ``conftest.py`` (batch_size=10,
max_concurrency=3) with a fast retry policy (4 attempts), and asserts exact numbers: the records
sent (``platform.calls``), what landed (``platform.members``) and the run record.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import threading
from pathlib import Path
from typing import Any, Iterable, Sequence

import pytest
from sqlalchemy import func, insert, select, update

import segport
from segport import (
    AlreadyRunning,
    AuthError,
    CapExceeded,
    ExitStatus,
    PermissionDenied,
    Record,
    RunError,
    RunStatus,
    UnknownAudienceError,
    Workspace,
)
from segport.pipeline.preview import Preview
from segport.store.schema import filter_members, runs, segments, sync_state
from segport.store.sqlite import pid_alive
from segport.testing.fakes import MemoryPlatform, MemoryWriter

API_KEY = "memory-key-0001"
CONNECTION = "Newsletter"
EXPORT = "vip-news"
SEGMENT = "VIP"
MAPPING = {"FNAME": "first_name", "LNAME": "last_name"}
OUTCOMES = ("created", "updated", "unchanged", "skipped", "rejected", "failed")
DEAD_PID = 2**22 + 12345  # above any Linux pid_max: never a live process


# --- helpers ----------------------------------------------------------------------------------


def key(i: int) -> str:
    return f"p{i:03d}"


def email(i: int) -> str:
    """The normalised email of profile ``i`` (the files hold it in mixed case)."""
    return f"user{i}@example.com"


def person(i: int, **changes: Any) -> dict[str, Any]:
    row = {"id": key(i), "email": f"User{i}@Example.COM", "first_name": f"First{i}", "last_name": f"Last{i}",
           "country": ("FR", "DE", "US")[i % 3]}
    row.update(changes)
    return row


def people(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [person(i) for i in range(start, start + n)]


_file_numbers = itertools.count(1)


def write_csv(folder: Path, rows: Sequence[dict[str, Any]]) -> Path:
    """A new CSV file of ``rows`` (columns of the first row) in ``folder``."""
    path = folder / f"profiles-{next(_file_numbers)}.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def load(ws: Workspace, folder: Path, rows: Sequence[dict[str, Any]]) -> None:
    """(Re)load profiles: rows are upserted by key."""
    ws.load_profiles(write_csv(folder, rows))


def set_members(ws: Workspace, folder: Path, segment: str, keys: Iterable[str]) -> None:
    """Create or replace a static segment with exactly ``keys``."""
    path = folder / f"members-{next(_file_numbers)}.txt"
    path.write_text("".join(f"{k}\n" for k in keys), encoding="utf-8")
    ws.load_segment(segment, path)


def connect(ws: Workspace, name: str = CONNECTION) -> None:
    ws.add_connection(name, "memory", {"api_key": API_KEY}, agree_privacy=True)


def setup_export(ws: Workspace, folder: Path, rows: Sequence[dict[str, Any]], *,
                 members: Iterable[str] | None = None, segments: dict[str, Iterable[str]] | None = None,
                 options: dict[str, Any] | None = None, name: str = EXPORT) -> str:
    """Profiles, static segments (default: VIP holding ``members`` or every row), a connection, an export."""
    load(ws, folder, rows)
    if segments is None:
        segments = {SEGMENT: members if members is not None else [r["id"] for r in rows]}
    for segment, keys in segments.items():
        set_members(ws, folder, segment, keys)
    connect(ws)
    ws.add_export(name, connection=CONNECTION, segments=list(segments), email_field="email", mapping=MAPPING,
                  options={"audience_id": "aud1", **(options or {})})
    return name


def sent(platform: MemoryPlatform) -> list[Record]:
    """Every record of every call, in call order."""
    return [r for call in platform.calls for r in call]


def counts(**nonzero: int) -> dict[str, int]:
    """A run's outcome counts: zero except ``nonzero``."""
    return {**dict.fromkeys(OUTCOMES, 0), **nonzero}


def rejects(run: segport.Run) -> list[dict[str, Any]]:
    """The run's reject file, sorted by key."""
    assert run.reject_file is not None
    lines = Path(run.reject_file).read_text(encoding="utf-8").splitlines()
    return sorted((json.loads(line) for line in lines), key=lambda r: r["key"])


def fields(i: int, **changes: str) -> dict[str, str]:
    return {"FNAME": f"First{i}", "LNAME": f"Last{i}", **changes}


def assert_members(platform: MemoryPlatform, indexes: Iterable[int], markers: set[str]) -> None:
    """The platform holds exactly profiles ``indexes``, each with its mapped fields and ``markers``."""
    indexes = list(indexes)
    assert set(platform.members) == {email(i) for i in indexes}
    for i in indexes:
        member = platform.members[email(i)]
        assert member.fields == fields(i)
        assert member.markers == markers


# --- 1. first run -----------------------------------------------------------------------------


def test_first_run_creates_every_selected_profile(ws: Workspace, platform: MemoryPlatform, tmp_path: Path) -> None:
    rows = people(25)
    rows[0]["email"] = "  User0@EXAMPLE.com  "  # trimmed and lower-cased
    setup_export(ws, tmp_path, rows, members=[key(i) for i in range(23)])  # p023, p024 not selected

    run = ws.run_export(EXPORT)

    assert run.status is RunStatus.SUCCEEDED
    assert run.counts == counts(created=23)
    assert run.requests == 3 == len(platform.calls)
    assert run.retries == 0
    assert run.reject_file is None and run.error is None
    assert sorted(len(c) for c in platform.calls) == [3, 10, 10]
    assert_members(platform, range(23), {SEGMENT})
    assert sorted(r.key for r in sent(platform)) == [key(i) for i in range(23)]
    for record in sent(platform):
        assert record.upsert and record.new
        assert record.add == record.segments == frozenset({SEGMENT})
        assert record.remove == frozenset()
    assert run.plan is not None and run.plan["selected"] == 23
    assert ws.get_run(run.id).counts == run.counts  # the stored record agrees
    assert [o[2] for o in ws.store.outcomes(run.id)] == ["created"] * 23


def test_markers_carry_the_tag_prefix_option(ws: Workspace, platform: MemoryPlatform, tmp_path: Path) -> None:
    setup_export(ws, tmp_path, people(3), options={"tag_prefix": "seg:"})
    ws.run_export(EXPORT)
    assert {m for member in platform.members.values() for m in member.markers} == {"seg:VIP"}


# --- 2. delta ---------------------------------------------------------------------------------


def test_changed_attribute_sends_exactly_one_upsert(ws: Workspace, platform: MemoryPlatform, tmp_path: Path) -> None:
    rows = people(25)
    setup_export(ws, tmp_path, rows)
    ws.run_export(EXPORT)
    platform.calls.clear()

    rows[7]["first_name"] = "  Seven  "
    load(ws, tmp_path, rows)
    run = ws.run_export(EXPORT)

    assert len(platform.calls) == 1
    [record] = sent(platform)
    assert (record.key, record.email, record.upsert, record.new) == (key(7), email(7), True, False)
    assert record.fields == fields(7, FNAME="Seven")  # values are trimmed too
    assert record.add == record.remove == frozenset()
    assert platform.members[email(7)].fields == fields(7, FNAME="Seven")
    assert run.counts == counts(updated=1, unchanged=24)
    assert run.requests == 1 and run.status is RunStatus.SUCCEEDED


def test_batches_hold_one_kind_of_send(ws: Workspace, platform: MemoryPlatform, tmp_path: Path) -> None:
    rows = people(30)
    setup_export(ws, tmp_path, rows, members=[key(i) for i in range(20)])
    ws.run_export(EXPORT)
    platform.calls.clear()
    for i in range(0, 20, 2):  # 10 known people change: updates
        rows[i]["first_name"] = "New"
    load(ws, tmp_path, rows)
    set_members(ws, tmp_path, SEGMENT, [key(i) for i in range(2, 30) if i != 5])  # 0, 1, 5 leave; 20-29 arrive

    ws.run_export(EXPORT)

    kinds = [{(r.upsert, r.new) for r in call} for call in platform.calls]
    assert sorted(len(call) for call in platform.calls) == [3, 9, 10]  # exits, updates of 2-18, new: one kind each
    assert all(len(kind) == 1 for kind in kinds)
    assert {k for kind in kinds for k in kind} == {(True, False), (True, True), (False, False)}


def test_unchanged_selection_sends_nothing(ws: Workspace, platform: MemoryPlatform, tmp_path: Path) -> None:
    setup_export(ws, tmp_path, people(25))
    ws.run_export(EXPORT)
    platform.calls.clear()

    run = ws.run_export(EXPORT)

    assert platform.calls == []
    assert run.counts == counts(unchanged=25)
    assert run.requests == 0 and run.status is RunStatus.SUCCEEDED
    assert run.plan is not None and run.plan["unchanged"] == 25 and run.plan["upserts"] == 0


def test_leaving_a_static_segment_removes_the_marker_only(ws: Workspace, platform: MemoryPlatform,
                                                         tmp_path: Path) -> None:
    setup_export(ws, tmp_path, people(12))
    ws.run_export(EXPORT)
    platform.calls.clear()

    set_members(ws, tmp_path, SEGMENT, [key(i) for i in range(12) if i != 4])
    run = ws.run_export(EXPORT)

    [record] = sent(platform)
    assert (record.key, record.email, record.upsert, record.new) == (key(4), email(4), False, False)
    assert record.remove == frozenset({SEGMENT})
    assert record.add == record.segments == frozenset()
    member = platform.members[email(4)]
    assert member.fields == fields(4) and member.markers == set() and member.status == "subscribed"
    assert len(platform.members) == 12
    assert run.counts == counts(updated=1, unchanged=11)
    assert run.plan is not None and (run.plan["exits"], run.plan["marker_removes"]) == (1, 1)

    platform.calls.clear()
    again = ws.run_export(EXPORT)  # the exit was recorded: nothing more to do
    assert platform.calls == []
    assert again.counts == counts(unchanged=11)


def test_entering_a_second_exported_segment_adds_its_marker(ws: Workspace, platform: MemoryPlatform,
                                                           tmp_path: Path) -> None:
    rows = people(6)
    setup_export(ws, tmp_path, rows, segments={SEGMENT: [r["id"] for r in rows], "Gold": [key(1)]})
    first = ws.run_export(EXPORT)
    assert first.counts == counts(created=6)
    assert platform.members[email(1)].markers == {SEGMENT, "Gold"}
    platform.calls.clear()

    set_members(ws, tmp_path, "Gold", [key(1), key(2)])
    run = ws.run_export(EXPORT)

    [record] = sent(platform)
    assert (record.key, record.upsert, record.new) == (key(2), False, False)
    assert record.add == frozenset({"Gold"})
    assert record.remove == frozenset()
    assert record.segments == frozenset({SEGMENT, "Gold"})
    assert platform.members[email(2)].markers == {SEGMENT, "Gold"}
    assert platform.members[email(2)].fields == fields(2)
    assert run.counts == counts(updated=1, unchanged=5)

    platform.calls.clear()
    set_members(ws, tmp_path, "Gold", [key(2)])  # p001 leaves Gold but stays in VIP
    left = ws.run_export(EXPORT)

    [record] = sent(platform)
    assert (record.key, record.upsert, record.new) == (key(1), False, False)
    assert (record.add, record.remove, record.segments) == (frozenset(), {"Gold"}, {SEGMENT})
    assert platform.members[email(1)].markers == {SEGMENT}
    assert left.counts == counts(updated=1, unchanged=5)


# --- 3. full ----------------------------------------------------------------------------------


def test_full_run_resends_everything(ws: Workspace, platform: MemoryPlatform, tmp_path: Path) -> None:
    setup_export(ws, tmp_path, people(25))
    ws.run_export(EXPORT)
    platform.calls.clear()

    run = ws.run_export(EXPORT, full=True)

    assert len(platform.calls) == 3 == run.requests
    assert sorted(r.key for r in sent(platform)) == [key(i) for i in range(25)]
    for record in sent(platform):
        assert record.upsert and not record.new
        assert record.add == record.segments == frozenset({SEGMENT})
        assert record.remove == frozenset()
    assert run.counts == counts(unchanged=25)  # the platform held exactly this already
    assert_members(platform, range(25), {SEGMENT})


# --- 4. dry run -------------------------------------------------------------------------------


def test_dry_run_plans_exactly_and_sends_nothing(ws: Workspace, platform: MemoryPlatform, tmp_path: Path) -> None:
    rows = people(15)
    rows[12]["email"] = "not-an-email"
    rows[13]["email"] = ""
    rows[14]["email"] = "USER3@example.com"  # duplicate of p003
    setup_export(ws, tmp_path, rows)

    run = ws.run_export(EXPORT, dry_run=True)

    assert run.status is RunStatus.PLANNED
    assert run.plan == {"selected": 15, "upserts": 12, "new": 12, "marker_adds": 12, "marker_removes": 0,
                        "exits": 0, "unchanged": 0, "rejects": 2, "duplicates": 1, "requests": 2,
                        "created": 12, "updated": 0, "rejected": 2, "skipped": 1, "would_create": 0}
    assert platform.calls == [] and platform.members == {}
    assert run.counts == counts() and run.requests == 0
    assert ws.get_run(run.id).plan == run.plan

    real = ws.run_export(EXPORT)  # the dry run left the sync state alone
    assert real.counts == counts(created=12, rejected=2, skipped=1)
    assert len(platform.members) == 12


def test_dry_run_of_a_delta(ws: Workspace, platform: MemoryPlatform, tmp_path: Path) -> None:
    rows = people(25)
    setup_export(ws, tmp_path, rows)
    ws.run_export(EXPORT)
    platform.calls.clear()
    rows[3]["last_name"] = "Changed"
    load(ws, tmp_path, rows)
    set_members(ws, tmp_path, SEGMENT, [key(i) for i in range(25) if i != 20])

    run = ws.run_export(EXPORT, dry_run=True)

    assert run.plan == {"selected": 24, "upserts": 1, "new": 0, "marker_adds": 0, "marker_removes": 1,
                        "exits": 1, "unchanged": 23, "rejects": 0, "duplicates": 0, "requests": 2,
                        "created": 0, "updated": 1, "rejected": 0, "skipped": 0, "would_create": 0}
    assert platform.calls == []

    real = ws.run_export(EXPORT)
    assert [[r.key for r in call] for call in platform.calls] == [[key(3)], [key(20)]]  # an update, an exit
    assert real.counts == counts(updated=2, unchanged=23)


def test_dry_run_counts_requests_with_the_writers_estimate(ws: Workspace, platform: MemoryPlatform,
                                                           tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(MemoryWriter, "requests_for", lambda self, records: 3 if records else 0)
    setup_export(ws, tmp_path, people(25))

    run = ws.run_export(EXPORT, dry_run=True)

    assert run.plan is not None and run.plan["requests"] == 9  # 3 batches
    assert platform.calls == []


def test_dry_run_passes_records_to_requests_for(ws: Workspace, platform: MemoryPlatform, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # BatchWriter.requests_for(records: Sequence[Record]): a plugin may read the records, e.g. one
    # request for the upserts plus one for the marker-only changes of a batch.
    given: list[str] = []

    def requests_for(self: MemoryWriter, records: Sequence[Any]) -> int:
        given.extend(type(r).__name__ for r in records)
        records = [r for r in records if isinstance(r, Record)]
        return int(any(r.upsert for r in records)) + int(any(not r.upsert for r in records))

    monkeypatch.setattr(MemoryWriter, "requests_for", requests_for)
    setup_export(ws, tmp_path, people(12))
    ws.run_export(EXPORT)
    set_members(ws, tmp_path, SEGMENT, [key(i) for i in range(11)])  # p011 exits: a marker-only record
    rows = people(12)
    rows[0]["first_name"] = "Changed"  # p000: an upsert
    load(ws, tmp_path, rows)

    run = ws.run_export(EXPORT, dry_run=True)

    assert set(given) == {"Record"}
    assert run.plan is not None and run.plan["requests"] == 2


@pytest.mark.parametrize("breakage", ["audience", "key"])
def test_dry_run_runs_the_pre_flight_and_fails_where_the_run_would(
    ws: Workspace, platform: MemoryPlatform, tmp_path: Path, breakage: str
) -> None:
    setup_export(ws, tmp_path, people(5))
    if breakage == "audience":
        platform.audiences = {"other"}
    else:
        platform.valid_keys = {"some-other-key-123"}

    with pytest.raises(segport.SegportError) as real:
        ws.run_export(EXPORT)
    with pytest.raises(segport.SegportError) as dry:
        ws.run_export(EXPORT, dry_run=True)

    assert type(dry.value) is type(real.value) and str(dry.value) == str(real.value)
    assert dry.value.exit_status is real.value.exit_status
    assert platform.calls == []
    planned, failed = ws.list_runs(EXPORT)
    assert failed.status is RunStatus.FAILED
    assert planned.status is RunStatus.PLANNED and planned.error == str(real.value)  # a plan that stopped
    assert [e.detail["run"] for e in ws.audit_entries() if e.action == "exports.run"] == [failed.id]


def test_dry_run_prepare_sees_a_dry_run_context_and_its_creations_are_reported(
    ws: Workspace, platform: MemoryPlatform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[bool] = []

    def prepare(self: MemoryWriter) -> None:
        seen.append(self.context.dry_run)
        if self.context.dry_run:
            self.would_create.append("tag VIP")

    monkeypatch.setattr(MemoryWriter, "prepare", prepare)
    setup_export(ws, tmp_path, people(3))
    preview = Preview(limit=2)

    run = ws.run_export(EXPORT, dry_run=True, preview=preview)

    assert seen == [True] and preview.would_create == ["tag VIP"]
    assert run.plan is not None and run.plan["would_create"] == 1
    assert preview.listed_of == 3 and [r["key"] for r in preview.records] == [key(0), key(1)]
    assert preview.records[0]["action"] == "create" and preview.records[0]["markers_added"] == [SEGMENT]
    ws.run_export(EXPORT)
    assert seen == [True, False]


def test_dry_run_counts_in_the_runs_words_what_the_run_then_does(
    ws: Workspace, platform: MemoryPlatform, tmp_path: Path
) -> None:
    rows = people(10)
    setup_export(ws, tmp_path, rows)
    ws.run_export(EXPORT)
    rows[1]["first_name"] = "Changed"  # updated
    rows[2]["email"] = "not-an-email"  # rejected (and its old address exits)
    rows += [person(10), {**person(11), "email": person(3)["email"]}]  # created; skipped (p003 has the address)
    load(ws, tmp_path, rows)
    set_members(ws, tmp_path, SEGMENT, [key(i) for i in range(12) if i != 5])  # p005 exits

    plan = ws.run_export(EXPORT, dry_run=True).plan
    assert plan is not None
    words = {k: plan[k] for k in ("created", "updated", "unchanged", "exits", "rejected", "skipped")}
    assert words == {"created": 1, "updated": 1, "unchanged": 7, "exits": 2, "rejected": 1, "skipped": 1}

    real = ws.run_export(EXPORT)
    assert real.counts == counts(created=1, updated=1 + 2, unchanged=7, rejected=1, skipped=1)  # exits: updated


# --- 5. pre-send rejects and duplicates -------------------------------------------------------


def test_invalid_missing_and_duplicate_emails(ws: Workspace, platform: MemoryPlatform, tmp_path: Path) -> None:
    rows = people(6)
    rows[1]["email"] = "not-an-email"
    rows[2]["email"] = ""
    rows[3]["email"] = " Dup@Example.com"
    rows[4]["email"] = "dup@EXAMPLE.COM "
    setup_export(ws, tmp_path, rows)

    run = ws.run_export(EXPORT)

    assert sorted(r.email for r in sent(platform)) == ["dup@example.com", email(0), email(5)]
    assert [r.key for r in sent(platform) if r.email == "dup@example.com"] == [key(3)]  # the smallest key
    assert set(platform.members) == {"dup@example.com", email(0), email(5)}
    assert run.status is RunStatus.SUCCEEDED
    assert run.counts == counts(created=3, rejected=2, skipped=1)
    assert run.reject_file == str(ws.home / "rejects" / f"run-{run.id}.jsonl")
    lines = rejects(run)
    assert [(r["key"], r["email"], r["status"]) for r in lines] == [
        (key(1), "not-an-email", "rejected"),
        (key(2), "", "rejected"),
        (key(4), "dup@example.com", "skipped"),
    ]
    assert lines[0]["reason"] == "email 'not-an-email' is not a valid address"
    assert lines[1]["reason"] == "email is empty"
    assert "duplicate email 'dup@example.com'" in lines[2]["reason"]
    assert sorted(o[:3] for o in ws.store.outcomes(run.id) if o[2] != "created") == [
        (key(1), "not-an-email", "rejected"), (key(2), "", "rejected"), (key(4), "dup@example.com", "skipped"),
    ]


def test_missing_email_attribute_is_rejected(ws: Workspace, platform: MemoryPlatform, tmp_path: Path) -> None:
    path = tmp_path / "profiles.jsonl"
    path.write_text(json.dumps({"id": "a1", "first_name": "No", "last_name": "Mail"}) + "\n"
                    + json.dumps({"id": "a2", "email": "ok@example.com", "first_name": "Yes", "last_name": "Mail"})
                    + "\n", encoding="utf-8")
    ws.load_profiles(path)
    set_members(ws, tmp_path, SEGMENT, ["a1", "a2"])
    connect(ws)
    ws.add_export(EXPORT, connection=CONNECTION, segments=[SEGMENT], email_field="email", mapping=MAPPING,
                  options={"audience_id": "aud1"})

    run = ws.run_export(EXPORT)

    assert [r.key for r in sent(platform)] == ["a2"]
    assert run.counts == counts(created=1, rejected=1)
    assert rejects(run) == [{"key": "a1", "email": "", "status": "rejected", "reason": "email is empty"}]


# --- 6. platform rejects ----------------------------------------------------------------------


def test_platform_reject_is_final_for_the_run_and_retried_next_run(ws: Workspace, platform: MemoryPlatform,
                                                                  tmp_path: Path) -> None:
    setup_export(ws, tmp_path, people(10))
    platform.reject_emails = {email(4): "member was permanently deleted"}

    run = ws.run_export(EXPORT)

    assert len(platform.calls) == 1 and run.requests == 1 and run.retries == 0
    assert platform.sent_emails().count(email(4)) == 1
    assert run.status is RunStatus.SUCCEEDED
    assert run.counts == counts(created=9, rejected=1)
    assert rejects(run) == [{"key": key(4), "email": email(4), "status": "rejected",
                             "reason": "member was permanently deleted"}]
    assert email(4) not in platform.members

    platform.calls.clear()
    platform.reject_emails = {}
    again = ws.run_export(EXPORT)  # not in the sync state: tried again, as new

    [record] = sent(platform)
    assert (record.key, record.new, record.upsert) == (key(4), True, True)
    assert again.counts == counts(created=1, unchanged=9)
    assert_members(platform, range(10), {SEGMENT})


# --- 7. retries -------------------------------------------------------------------------------


def test_whole_call_failures_are_retried(ws: Workspace, platform: MemoryPlatform, tmp_path: Path) -> None:
    setup_export(ws, tmp_path, people(25))
    platform.fail_next = 2

    run = ws.run_export(EXPORT)

    assert run.status is RunStatus.SUCCEEDED
    assert run.retries == 2
    assert run.requests == 5 == len(platform.calls)  # 3 batches + 2 failed calls
    assert run.counts == counts(created=25)
    assert_members(platform, range(25), {SEGMENT})


def test_retry_after_is_a_floor(ws: Workspace, platform: MemoryPlatform, tmp_path: Path) -> None:
    setup_export(ws, tmp_path, people(3))
    platform.fail_next, platform.retry_after = 1, 0.05  # the policy alone waits at most 0.01 s

    run = ws.run_export(EXPORT)

    assert run.retries == 1 and run.requests == 2
    assert run.duration_s is not None and run.duration_s >= 0.05


def test_retryable_record_is_retried_alone(ws: Workspace, platform: MemoryPlatform, tmp_path: Path) -> None:
    setup_export(ws, tmp_path, people(10))
    platform.retryable_emails = {email(3): 1}

    run = ws.run_export(EXPORT)

    assert [len(c) for c in platform.calls] == [10, 1]
    assert platform.calls[1][0].key == key(3)
    assert run.retries == 1 and run.requests == 2
    assert run.counts == counts(created=10)
    assert run.status is RunStatus.SUCCEEDED
    assert_members(platform, range(10), {SEGMENT})


def test_record_failing_every_attempt_is_failed_then_resent(ws: Workspace, platform: MemoryPlatform,
                                                            tmp_path: Path) -> None:
    setup_export(ws, tmp_path, people(10))
    platform.retryable_emails = {email(3): 4}  # as many as the policy's attempts

    run = ws.run_export(EXPORT)

    assert [len(c) for c in platform.calls] == [10, 1, 1, 1]
    assert run.retries == 3 and run.requests == 4
    assert run.status is RunStatus.PARTIAL
    assert run.counts == counts(created=9, failed=1)
    assert run.error == "1 records still failed after 4 tries; the next run retries them"
    assert ws.store.outcomes(run.id, "failed") == [(key(3), email(3), "failed", "memory platform: try again later")]
    assert [r["status"] for r in rejects(run)] == ["failed"]
    assert email(3) not in platform.members

    platform.calls.clear()
    again = ws.run_export(EXPORT)

    assert [r.key for r in sent(platform)] == [key(3)]
    assert again.status is RunStatus.SUCCEEDED
    assert again.counts == counts(created=1, unchanged=9)
    assert_members(platform, range(10), {SEGMENT})


def test_batch_failing_every_attempt_is_failed_then_resent(ws: Workspace, platform: MemoryPlatform,
                                                           tmp_path: Path) -> None:
    setup_export(ws, tmp_path, people(5))
    platform.fail_next = 4

    with pytest.raises(segport.RunError) as raised:  # nothing went through: the run failed (issue 15)
        ws.run_export(EXPORT)

    run = raised.value.run
    assert run is not None and ws.list_runs(EXPORT)[0] == run
    assert len(platform.calls) == 4 == run.requests
    assert run.retries == 3
    assert run.status is RunStatus.FAILED and raised.value.exit_status is ExitStatus.RUN_FAILED
    assert run.error == str(raised.value) == (
        "all 5 records sent failed after 4 tries (first: memory platform: 503 Service Unavailable (after 4 tries)); "
        "the next run retries them"
    )
    assert run.counts == counts(failed=5)
    assert {o[3] for o in ws.store.outcomes(run.id)} == {"memory platform: 503 Service Unavailable (after 4 tries)"}
    assert platform.members == {}

    platform.calls.clear()
    again = ws.run_export(EXPORT)
    assert len(platform.calls) == 1
    assert again.counts == counts(created=5)
    assert_members(platform, range(5), {SEGMENT})


# --- 8. bisect --------------------------------------------------------------------------------


def test_bad_batch_is_bisected_down_to_the_bad_record(ws: Workspace, platform: MemoryPlatform,
                                                      tmp_path: Path) -> None:
    setup_export(ws, tmp_path, people(10))
    platform.bad_batch_emails = {email(7)}

    run = ws.run_export(EXPORT)

    # [0-9] refused; [0-4] ok; [5-9] refused; [5,6] ok; [7,8,9] refused; [7] refused; [8,9] ok
    assert [[r.key for r in c] for c in platform.calls] == [
        [key(i) for i in range(10)], [key(i) for i in range(5)], [key(i) for i in range(5, 10)],
        [key(5), key(6)], [key(7), key(8), key(9)], [key(7)], [key(8), key(9)],
    ]
    assert run.requests == 7 and run.retries == 0
    assert run.counts == counts(created=9, rejected=1)
    assert run.status is RunStatus.SUCCEEDED
    assert rejects(run) == [{"key": key(7), "email": email(7), "status": "rejected",
                             "reason": "memory platform: 400 the batch holds a malformed member"}]
    assert_members(platform, [i for i in range(10) if i != 7], {SEGMENT})


# --- 9. concurrency ---------------------------------------------------------------------------


def test_concurrency_is_bounded_by_the_destination_limit(ws: Workspace, platform: MemoryPlatform,
                                                         tmp_path: Path) -> None:
    setup_export(ws, tmp_path, people(120))
    platform.latency = 0.02

    run = ws.run_export(EXPORT)

    assert 1 < platform.max_in_flight <= 3
    assert len(platform.calls) == 12 == run.requests
    assert run.counts == counts(created=120)
    assert_members(platform, range(120), {SEGMENT})


def test_runs_sharing_a_credential_share_its_concurrency(ws: Workspace, platform: MemoryPlatform, tmp_path: Path,
                                                         act_as: Any) -> None:
    setup_export(ws, tmp_path, people(60))
    ws.add_export("second", connection=CONNECTION, segments=[SEGMENT], email_field="email", mapping=MAPPING,
                  options={"audience_id": "aud1", "tag_prefix": "2:"})
    platform.latency = 0.02
    other = act_as("ada")  # a second workspace handle: its own database connection
    results: dict[str, segport.Run] = {}

    def run_in_thread(workspace: Workspace, name: str) -> None:
        results[name] = workspace.run_export(name)

    threads = [threading.Thread(target=run_in_thread, args=(ws, EXPORT)),
               threading.Thread(target=run_in_thread, args=(other, "second"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert set(results) == {EXPORT, "second"}
    for run in results.values():  # who created a member and who updated it depends on timing
        assert run.status is RunStatus.SUCCEEDED
        assert run.counts["created"] + run.counts["updated"] == 60 == sum(run.counts.values())
    assert sum(r.counts["created"] for r in results.values()) == 60
    assert len(platform.calls) == 12
    assert platform.max_in_flight == 3  # one governor for the credential, not one per run
    assert {frozenset(m.markers) for m in platform.members.values()} == {frozenset({SEGMENT, "2:VIP"})}


# --- 10. profile cap --------------------------------------------------------------------------


@pytest.mark.parametrize("cap", [5, 9])
def test_profile_cap_stops_the_run_before_sending(ws: Workspace, platform: MemoryPlatform, tmp_path: Path,
                                                  cap: int) -> None:
    setup_export(ws, tmp_path, people(10))
    ws.set_profile_cap(CONNECTION, cap)

    with pytest.raises(CapExceeded) as caught:
        ws.run_export(EXPORT)

    assert caught.value.exit_status is ExitStatus.CAP_EXCEEDED
    assert f"selects 10 profiles, more than the cap of {cap}" in str(caught.value)
    assert platform.calls == []
    assert ws.list_runs(EXPORT) == []  # refused before it started: the workspace is unchanged


def test_profile_cap_equal_to_the_selection_runs(ws: Workspace, platform: MemoryPlatform, tmp_path: Path) -> None:
    setup_export(ws, tmp_path, people(10))
    ws.set_profile_cap(CONNECTION, 10)
    assert ws.run_export(EXPORT).counts == counts(created=10)


# --- 11. overlap lock -------------------------------------------------------------------------


def test_a_live_running_run_holds_the_lock(ws: Workspace, platform: MemoryPlatform, tmp_path: Path) -> None:
    setup_export(ws, tmp_path, people(5))
    holder = ws.store.start_run(ws.get_export(EXPORT), "manual", "ada")

    with pytest.raises(AlreadyRunning) as caught:
        ws.run_export(EXPORT)

    assert caught.value.exit_status is ExitStatus.ALREADY_RUNNING
    assert f"run {holder.id}" in str(caught.value)
    assert platform.calls == []
    assert [(r.id, r.status) for r in ws.list_runs(EXPORT)] == [(holder.id, RunStatus.RUNNING)]
    assert ws.run_export(EXPORT, dry_run=True).status is RunStatus.PLANNED  # a plan takes no lock


def test_a_dead_running_run_is_interrupted_and_the_lock_released(ws: Workspace, platform: MemoryPlatform,
                                                                 tmp_path: Path) -> None:
    setup_export(ws, tmp_path, people(5))
    stale = ws.store.start_run(ws.get_export(EXPORT), "manual", "ada")
    assert not pid_alive(DEAD_PID)
    with ws.store.transaction():
        ws.store.db.execute(update(runs).where(runs.c.id == stale.id).values(pid=DEAD_PID))

    run = ws.run_export(EXPORT)

    assert run.status is RunStatus.SUCCEEDED and run.counts == counts(created=5)
    statuses = {r.id: r.status for r in ws.list_runs(EXPORT)}
    assert statuses == {stale.id: RunStatus.INTERRUPTED, run.id: RunStatus.SUCCEEDED}


# --- 12. crash and resume ---------------------------------------------------------------------


@pytest.mark.parametrize(("crash", "status"), [(RuntimeError, RunStatus.FAILED),
                                                (KeyboardInterrupt, RunStatus.INTERRUPTED)])
def test_a_crashed_run_resumes_where_it_stopped(ws: Workspace, platform: MemoryPlatform, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch, crash: type[BaseException],
                                                status: RunStatus) -> None:
    setup_export(ws, tmp_path, people(120))
    original = MemoryWriter.write_batch
    lock = threading.Lock()
    seen = {"calls": 0}

    def crashing(self: MemoryWriter, records: Sequence[Record]) -> Any:
        with lock:
            seen["calls"] += 1
            number = seen["calls"]
        if number == 3:
            raise crash("simulated crash")
        return original(self, records)

    monkeypatch.setattr(MemoryWriter, "write_batch", crashing)
    with pytest.raises(crash):
        ws.run_export(EXPORT)

    acknowledged = set(platform.members)
    assert 20 <= len(acknowledged) <= 110 and len(acknowledged) % 10 == 0
    [crashed] = ws.list_runs(EXPORT)
    assert crashed.status is status
    assert crashed.counts == counts(created=len(acknowledged))  # every acknowledged batch was committed

    monkeypatch.setattr(MemoryWriter, "write_batch", original)
    platform.calls.clear()
    run = ws.run_export(EXPORT)

    resent = [r.email for r in sent(platform)]
    assert len(resent) == 120 - len(acknowledged)
    assert set(resent) == {email(i) for i in range(120)} - acknowledged
    assert run.counts == counts(created=120 - len(acknowledged), unchanged=len(acknowledged))
    assert run.status is RunStatus.SUCCEEDED
    assert_members(platform, range(120), {SEGMENT})


# --- 13. fatal errors -------------------------------------------------------------------------


def test_unknown_audience_fails_the_run_before_sending(ws: Workspace, platform: MemoryPlatform,
                                                       tmp_path: Path) -> None:
    setup_export(ws, tmp_path, people(5))
    platform.audiences = {"other"}

    with pytest.raises(UnknownAudienceError) as caught:
        ws.run_export(EXPORT)

    assert caught.value.exit_status is ExitStatus.DESTINATION_ERROR
    assert "audience 'aud1' does not exist" in str(caught.value)
    assert platform.calls == []
    [run] = ws.list_runs(EXPORT)
    assert run.status is RunStatus.FAILED and run.error == str(caught.value)


def test_revoked_key_fails_the_run_with_auth_error(ws: Workspace, platform: MemoryPlatform, tmp_path: Path) -> None:
    setup_export(ws, tmp_path, people(5))
    platform.valid_keys = {"some-other-key-123"}

    with pytest.raises(AuthError) as caught:
        ws.run_export(EXPORT)

    assert caught.value.exit_status is ExitStatus.AUTH_ERROR
    assert platform.calls == []
    [run] = ws.list_runs(EXPORT)
    assert run.status is RunStatus.FAILED
    assert "refused the API key" in (run.error or "")
    assert API_KEY not in (run.error or "")


# --- 14. hooks --------------------------------------------------------------------------------


class Recorder:
    """Records every lifecycle hook call (with copies of the mutable run counts)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    @segport.hookimpl
    def segport_before_run(self, run: segport.Run, export: segport.Export) -> None:
        self.events.append(("before_run", (run.status, export.name, dict(run.counts))))

    @segport.hookimpl
    def segport_after_batch(self, run: segport.Run, export: segport.Export, result: segport.BatchResult) -> None:
        self.events.append(("after_batch", (len(result.outcomes), result.requests, dict(run.counts))))

    @segport.hookimpl
    def segport_on_reject(self, run: segport.Run, export: segport.Export, outcome: segport.Outcome,
                          email: str) -> None:
        self.events.append(("on_reject", (outcome.key, outcome.status.value, email)))

    @segport.hookimpl
    def segport_after_run(self, run: segport.Run, export: segport.Export) -> None:
        self.events.append(("after_run", (run.status, export.name, dict(run.counts))))

    def of(self, name: str) -> list[Any]:
        return [detail for event, detail in self.events if event == name]


def test_lifecycle_hooks_see_the_run(ws: Workspace, platform: MemoryPlatform, tmp_path: Path) -> None:
    rows = people(25)
    rows[10]["email"] = "broken"
    setup_export(ws, tmp_path, rows)
    platform.reject_emails = {email(20): "spam trap"}
    recorder = Recorder()
    ws.pm.register(recorder)

    run = ws.run_export(EXPORT)

    assert recorder.events[0] == ("before_run", (RunStatus.RUNNING, EXPORT, counts()))
    batches = recorder.of("after_batch")
    assert sorted(size for size, _, _ in batches) == [4, 10, 10]  # 24 sends
    assert sum(requests for _, requests, _ in batches) == 3 == run.requests
    assert batches[-1][2] == counts(created=23, rejected=2)
    assert sorted(recorder.of("on_reject")) == [(key(10), "rejected", "broken"), (key(20), "rejected", email(20))]
    assert recorder.events[-1] == ("after_run", (RunStatus.SUCCEEDED, EXPORT, counts(created=23, rejected=2)))
    assert len(recorder.of("before_run")) == len(recorder.of("after_run")) == 1
    assert run.counts == counts(created=23, rejected=2)


def test_after_run_hook_sees_a_failed_run(ws: Workspace, platform: MemoryPlatform, tmp_path: Path) -> None:
    setup_export(ws, tmp_path, people(10))
    platform.audiences = {"other"}
    recorder = Recorder()
    ws.pm.register(recorder)

    with pytest.raises(UnknownAudienceError):
        ws.run_export(EXPORT)

    assert [e for e, _ in recorder.events] == ["before_run", "after_run"]
    assert recorder.of("after_run")[0][0] is RunStatus.FAILED


class Policy:
    """A permission policy answering ``verdict`` for ``action`` and None (no opinion) otherwise."""

    def __init__(self, verdict: bool | None, action: str = "exports.run") -> None:
        self.verdict = verdict
        self.action = action
        self.asked: list[str] = []

    @segport.hookimpl
    def segport_permission(self, user: segport.User, action: str, resource: object) -> bool | None:
        self.asked.append(action)
        return self.verdict if action == self.action else None


def test_permission_hook_can_deny_an_admin(ws: Workspace, platform: MemoryPlatform, tmp_path: Path) -> None:
    setup_export(ws, tmp_path, people(5))
    ws.pm.register(Policy(False))

    with pytest.raises(PermissionDenied) as caught:
        ws.run_export(EXPORT)

    assert str(caught.value) == ("user 'ada' (admin) may not exports run 'vip-news': "
                                 "a permission policy plugin denied it")
    assert platform.calls == []
    assert ws.list_runs(EXPORT) == []


def test_permission_hook_returning_none_leaves_the_matrix(ws: Workspace, platform: MemoryPlatform, tmp_path: Path,
                                                          act_as: Any) -> None:
    setup_export(ws, tmp_path, people(5))
    policy = Policy(None)
    ws.pm.register(policy)

    assert ws.run_export(EXPORT).counts == counts(created=5)  # admin: allowed
    assert "exports.run" in policy.asked
    with pytest.raises(PermissionDenied):
        act_as("vera").run_export(EXPORT)  # viewer: denied by the matrix
    with pytest.raises(PermissionDenied):
        act_as("carl").run_export(EXPORT)  # contributor, connection not shared
    assert len(ws.list_runs(EXPORT)) == 1


# --- 15. filter segments ----------------------------------------------------------------------


def test_filter_segments_are_evaluated_at_each_run(ws: Workspace, platform: MemoryPlatform, tmp_path: Path) -> None:
    rows = people(12)  # country FR for 0, 3, 6, 9; DE for 1, 4, 7, 10
    load(ws, tmp_path, rows)
    ws.define_segment("French", "country = 'FR'")
    connect(ws)
    ws.add_export(EXPORT, connection=CONNECTION, segments=["French"], email_field="email", mapping=MAPPING,
                  options={"audience_id": "aud1"})

    first = ws.run_export(EXPORT)
    assert first.counts == counts(created=4)
    assert_members(platform, [0, 3, 6, 9], {"French"})

    # p003 moves to DE (exits), p004 moves to FR (enters): attributes are reloaded
    rows[3]["country"], rows[4]["country"] = "DE", "FR"
    load(ws, tmp_path, rows)
    platform.calls.clear()
    second = ws.run_export(EXPORT)

    by_key = {r.key: r for r in sent(platform)}
    assert sorted(by_key) == [key(3), key(4)]
    assert (by_key[key(3)].remove, by_key[key(3)].add, by_key[key(3)].upsert) == ({"French"}, frozenset(), False)
    assert (by_key[key(4)].add, by_key[key(4)].upsert, by_key[key(4)].new) == ({"French"}, True, True)
    assert second.counts == counts(created=1, updated=1, unchanged=3)
    assert platform.members[email(3)].markers == set()
    assert platform.members[email(4)].markers == {"French"}

    # redefining the filter changes membership at the next run
    ws.define_segment("French", "country = 'DE'")  # now 1, 3, 7, 10
    platform.calls.clear()
    third = ws.run_export(EXPORT)

    by_key = {r.key: r for r in sent(platform)}
    assert sorted(by_key) == [key(i) for i in (0, 1, 3, 4, 6, 7, 9, 10)]
    for i in (0, 4, 6, 9):
        assert (by_key[key(i)].remove, by_key[key(i)].upsert) == ({"French"}, False)
    for i in (1, 7, 10):
        assert (by_key[key(i)].add, by_key[key(i)].upsert, by_key[key(i)].new) == ({"French"}, True, True)
    # p003 was delivered before (its exit was recorded): it re-enters with a marker only
    assert (by_key[key(3)].add, by_key[key(3)].upsert, by_key[key(3)].new) == ({"French"}, False, False)
    assert third.counts == counts(created=3, updated=5)
    assert {e for e, m in platform.members.items() if m.markers} == {email(i) for i in (1, 3, 7, 10)}


# --- 16. detached export ----------------------------------------------------------------------


def test_removing_the_connection_detaches_its_exports(ws: Workspace, platform: MemoryPlatform, tmp_path: Path) -> None:
    setup_export(ws, tmp_path, people(5))

    assert ws.remove_connection(CONNECTION) == 1
    export = ws.get_export(EXPORT)
    assert export.detached and not export.enabled and export.connection == CONNECTION

    with pytest.raises(RunError) as caught:
        ws.run_export(EXPORT)

    assert f"its connection {CONNECTION!r} was removed" in str(caught.value)
    assert caught.value.exit_status is ExitStatus.RUN_FAILED
    assert platform.calls == [] and ws.list_runs(EXPORT) == []
    assert ws.refresh() == []  # refresh skips detached exports


# --- planner: an address shared by an exiting profile and a selected one ------------------------

def test_email_moving_from_an_exiting_profile_to_a_new_one_keeps_its_marker(
        ws: Workspace, platform: MemoryPlatform, tmp_path: Path) -> None:
    # p005 is delivered; then the same person is re-keyed p000 (a smaller key) and p005 leaves VIP.
    setup_export(ws, tmp_path, people(6, start=1), members=[key(5)])
    ws.run_export(EXPORT)
    load(ws, tmp_path, [person(0, email="User5@Example.COM")])
    set_members(ws, tmp_path, SEGMENT, [key(0)])

    run = ws.run_export(EXPORT)
    ws.run_export(EXPORT)  # and the next run does not repair it

    assert run.status is RunStatus.SUCCEEDED
    assert platform.members[email(5)].markers == {SEGMENT}  # p000 holds the address and is in VIP


def test_skipped_duplicate_leaving_does_not_strip_the_kept_profiles_marker(
        ws: Workspace, platform: MemoryPlatform, tmp_path: Path) -> None:
    rows = people(3)
    rows[1]["email"] = "USER2@example.com"  # p001 and p002 share an address
    setup_export(ws, tmp_path, rows, members=[key(2)])
    ws.run_export(EXPORT)  # delivered for p002
    set_members(ws, tmp_path, SEGMENT, [key(1), key(2)])
    ws.run_export(EXPORT)  # p001 keeps the address, p002 is skipped
    set_members(ws, tmp_path, SEGMENT, [key(1)])  # the skipped duplicate leaves

    run = ws.run_export(EXPORT)

    assert run.status is RunStatus.SUCCEEDED
    assert platform.members[email(2)].markers == {SEGMENT}  # p001 is still in VIP with that address


# --- delta planning: only what changed is read (issue 6) --------------------------------------


@pytest.fixture
def mapped_keys(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Emails the planner mapped (so parsed and hashed) during the test, in order."""
    seen: list[str] = []
    original = segport.pipeline.mapper.Mapper.map

    def spy(self: segport.pipeline.mapper.Mapper, attrs: Any) -> Any:
        seen.append(str(attrs.get("id")))
        return original(self, attrs)

    monkeypatch.setattr(segport.pipeline.mapper.Mapper, "map", spy)
    return seen


def test_a_delta_run_reads_only_the_changed_profiles(ws: Workspace, platform: MemoryPlatform, tmp_path: Path,
                                                     mapped_keys: list[str]) -> None:
    rows = people(40)
    setup_export(ws, tmp_path, rows)
    ws.run_export(EXPORT)
    rows[3]["first_name"], rows[30]["last_name"] = "Trois", "Trente"
    load(ws, tmp_path, rows)  # all 40 reloaded, 2 of them changed
    mapped_keys.clear()

    run = ws.run_export(EXPORT)

    assert mapped_keys == [key(3), key(30)]
    assert run.counts == counts(updated=2, unchanged=38)


def test_a_new_version_mapping_to_the_same_record_is_remembered_not_sent(
        ws: Workspace, platform: MemoryPlatform, tmp_path: Path, mapped_keys: list[str]) -> None:
    rows = people(10)
    setup_export(ws, tmp_path, rows)
    ws.run_export(EXPORT)
    rows[4]["country"] = "IT"  # not mapped: the record is the same
    load(ws, tmp_path, rows)
    platform.calls.clear()
    mapped_keys.clear()

    first = ws.run_export(EXPORT)
    second = ws.run_export(EXPORT)

    assert platform.calls == [] and mapped_keys == [key(4)]  # read once, then known
    assert first.counts == second.counts == counts(unchanged=10)


def test_a_new_data_matching_rereads_and_resends_every_profile(ws: Workspace, platform: MemoryPlatform,
                                                                tmp_path: Path, mapped_keys: list[str]) -> None:
    setup_export(ws, tmp_path, people(6))
    ws.run_export(EXPORT)
    platform.calls.clear()
    mapped_keys.clear()

    ws.edit_export(EXPORT, mapping={"FNAME": "first_name", "LNAME": "last_name", "COUNTRY": "country"})
    run = ws.run_export(EXPORT)

    assert sorted(mapped_keys) == [key(i) for i in range(6)]
    assert run.counts == counts(updated=6)
    assert platform.members[email(2)].fields == {**fields(2), "COUNTRY": "US"}


def test_a_replacing_load_exits_the_profiles_it_no_longer_holds(ws: Workspace, platform: MemoryPlatform,
                                                                 tmp_path: Path) -> None:
    rows = people(5)
    setup_export(ws, tmp_path, rows)
    ws.run_export(EXPORT)
    platform.calls.clear()

    ws.load_profiles(write_csv(tmp_path, rows[:2] + rows[3:]), replace=True)  # p002 is gone
    run = ws.run_export(EXPORT)

    [record] = sent(platform)
    assert (record.key, record.remove, record.upsert) == (key(2), {SEGMENT}, False)
    assert run.counts == counts(updated=1, unchanged=4)


def test_a_smaller_key_taking_an_unchanged_profiles_address_displaces_it(
        ws: Workspace, platform: MemoryPlatform, tmp_path: Path) -> None:
    # p005 holds user5@ in VIP; p000 arrives with the same address, in Other only: the smallest
    # key holds the address, so it carries Other and loses VIP, as a full plan would decide.
    setup_export(ws, tmp_path, people(6, start=1), segments={SEGMENT: [key(5)], "Other": []})
    ws.run_export(EXPORT)
    load(ws, tmp_path, [person(0, email="user5@example.com")])
    set_members(ws, tmp_path, "Other", [key(0)])
    platform.calls.clear()

    run = ws.run_export(EXPORT)
    calls = len(platform.calls)
    again = ws.run_export(EXPORT)

    assert platform.members[email(5)].markers == {"Other"}
    assert run.counts == counts(updated=2, skipped=1) and rejects(run)[0]["key"] == key(5)  # p000 upserted, VIP off
    assert again.counts == counts(skipped=1, unchanged=1) and len(platform.calls) == calls  # stable


def test_filter_membership_is_kept_by_the_load_so_a_run_evaluates_nothing(
        ws: Workspace, platform: MemoryPlatform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = people(12)
    load(ws, tmp_path, rows)
    ws.define_segment("French", "country = 'FR'")
    connect(ws)
    ws.add_export(EXPORT, connection=CONNECTION, segments=["French"], email_field="email", mapping=MAPPING,
                  options={"audience_id": "aud1"})
    ws.run_export(EXPORT)
    evaluated: list[str] = []
    original = segport.filters.Filter.matches

    def spy(self: segport.filters.Filter, profile: Any) -> bool:
        evaluated.append(str(profile.get("id")))
        return original(self, profile)

    monkeypatch.setattr(segport.filters.Filter, "matches", spy)
    rows[6]["country"] = "DE"
    load(ws, tmp_path, rows[5:8])
    assert evaluated == [key(5), key(6), key(7)]  # the load evaluates the rows it loads, once
    evaluated.clear()

    run = ws.run_export(EXPORT)

    assert evaluated == []
    assert run.counts == counts(updated=1, unchanged=3)
    cached = set(ws.store.db.execute(select(filter_members.c.profile_key)).scalars())
    assert cached == {key(i) for i in (0, 3, 9)}

    ws.define_segment("French", "country = 'DE'")  # a new definition: its cache is rebuilt at the next run
    run = ws.run_export(EXPORT)
    assert len(evaluated) == 12 and run.counts == counts(created=4, updated=4)  # 1, 4, 7, 10 new; 6 back; 0, 3, 9 out


def test_a_stale_filter_cache_is_brought_up_to_date_from_the_changed_profiles_only(
        ws: Workspace, platform: MemoryPlatform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = people(12)
    load(ws, tmp_path, rows)
    ws.define_segment("French", "country = 'FR'")  # evaluated now: 0, 3, 6, 9
    ws.define_segment("Germans", "country = 'DE'")  # 1, 4, 7, 10
    db = ws.store.db
    rows[3]["country"] = "DE"
    load(ws, tmp_path, rows[3:4])  # keeps both current
    # as if that load could not keep French current: its cache lags one load behind
    french = ws.store.get_segment("French").id
    db.execute(update(segments).where(segments.c.id == french).values(cached_seq=1))
    db.execute(insert(filter_members).values(segment_id=french, profile_key="p003"))
    evaluated: list[str] = []
    original = segport.filters.Filter.matches

    def spy(self: segport.filters.Filter, profile: Any) -> bool:
        evaluated.append(str(profile.get("id")))
        return original(self, profile)

    monkeypatch.setattr(segport.filters.Filter, "matches", spy)

    listed = {s.name: s.members for s in ws.list_segments()}

    assert listed == {"French": 3, "Germans": 5}
    assert evaluated == [key(3)]  # only what was loaded since French's cache was current
    assert {r.name: r.cached_seq for r in db.execute(select(segments.c.name, segments.c.cached_seq))} == {
        "French": 2,
        "Germans": 2,
    }
    members = select(segments.c.name, func.count().label("n")).join(filter_members).group_by(segments.c.name)
    assert {r.name: r.n for r in db.execute(members)} == {"French": 3, "Germans": 5}


# --- a full disk ---------------------------------------------------------------------------------


@pytest.mark.sqlite_only("fills the disk with SQLite's max_page_count")
def test_a_full_disk_is_a_one_line_workspace_error_and_the_next_run_continues(
        ws: Workspace, platform: MemoryPlatform, tmp_path: Path) -> None:
    setup_export(ws, tmp_path, people(300))
    pages = ws.store.db.driver.execute("PRAGMA page_count").fetchone()[0]
    ws.store.db.driver.execute(f"PRAGMA max_page_count = {pages + 2}")  # the disk fills during the run
    with pytest.raises(segport.WorkspaceError, match="cannot write the workspace database") as caught:
        ws.run_export(EXPORT)
    assert "\n" not in str(caught.value) and caught.value.exit_status is ExitStatus.WORKSPACE_ERROR
    committed = len(ws.store.db.execute(select(sync_state.c.profile_key)).all())
    assert committed < 300  # what was acknowledged before the disk filled, nothing else

    ws.store.db.driver.execute("PRAGMA max_page_count = 1073741823")  # space freed
    platform.calls.clear()
    ws.run_export(EXPORT)
    assert len(sent(platform)) == 300 - committed  # the next run sends only the rest
    assert_members(platform, range(300), {SEGMENT})


# --- issue 15: run records tell the truth ---------------------------------------------------------


def test_a_run_whose_records_all_failed_is_failed_not_partial(ws: Workspace, platform: MemoryPlatform,
                                                             tmp_path: Path) -> None:
    setup_export(ws, tmp_path, people(136))
    platform.retryable_emails = {email(i): 4 for i in range(136)}  # every record, every attempt

    with pytest.raises(RunError, match=r"^all 136 records sent failed after 4 tries") as raised:
        ws.run_export(EXPORT)

    [run] = ws.list_runs(EXPORT)
    assert raised.value.run == run and raised.value.exit_status is ExitStatus.RUN_FAILED
    assert run.status is RunStatus.FAILED and run.counts == counts(failed=136)
    assert "memory platform: try again later" in (run.error or "")


def test_records_failed_in_a_full_run_are_retried_by_the_next_delta_run(ws: Workspace, platform: MemoryPlatform,
                                                                       tmp_path: Path) -> None:
    setup_export(ws, tmp_path, people(10))
    assert ws.run_export(EXPORT).counts == counts(created=10)
    platform.retryable_emails = {email(i): 4 for i in range(5)}

    full = ws.run_export(EXPORT, full=True)

    assert full.status is RunStatus.PARTIAL and full.counts == counts(unchanged=5, failed=5)
    assert full.error == "5 records still failed after 4 tries; the next run retries them"
    platform.calls.clear()
    platform.members[email(2)].markers.clear()  # what the failed full run would have repaired

    delta = ws.run_export(EXPORT)  # a delta run: the failed records are sent again, in full

    assert sorted(r.email for r in sent(platform)) == [email(i) for i in range(5)]
    assert all(r.upsert and r.add == {SEGMENT} for r in sent(platform))
    assert delta.status is RunStatus.SUCCEEDED and delta.counts == counts(updated=1, unchanged=9)
    assert_members(platform, range(10), {SEGMENT})
    platform.calls.clear()
    assert ws.run_export(EXPORT).counts == counts(unchanged=10) and platform.calls == []  # settled


def test_every_outcome_but_success_is_in_the_reject_file(ws: Workspace, platform: MemoryPlatform, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    rows = people(8)
    rows[1]["email"] = "not-an-email"
    rows[3]["email"] = email(2)  # a duplicate of profile 2
    setup_export(ws, tmp_path, rows)
    platform.reject_emails = {email(4): "member was permanently deleted"}
    platform.retryable_emails = {email(5): 4}
    original = MemoryWriter._write

    def compliance(self: MemoryWriter, record: Record) -> segport.Outcome:
        if record.email in (email(6), email(7)):
            return segport.Outcome(record.key, segport.OutcomeStatus.SKIPPED, "compliance state: not changed")
        return original(self, record)

    monkeypatch.setattr(MemoryWriter, "_write", compliance)
    run = ws.run_export(EXPORT)

    assert run.counts == counts(created=2, rejected=2, failed=1, skipped=3)
    assert [(r["key"], r["status"]) for r in rejects(run)] == [
        (key(1), "rejected"), (key(3), "skipped"), (key(4), "rejected"), (key(5), "failed"),
        (key(6), "skipped"), (key(7), "skipped"),
    ]
    assert all(r["reason"] for r in rejects(run))
    assert rejects(run)[4] == {"key": key(6), "email": email(6), "status": "skipped",
                               "reason": "compliance state: not changed"}


def test_a_running_run_whose_pid_was_reused_is_stale_once_its_heartbeat_stopped(
    ws: Workspace, platform: MemoryPlatform, tmp_path: Path
) -> None:
    setup_export(ws, tmp_path, people(5))
    killed = ws.store.start_run(ws.get_export(EXPORT), "manual", "ada")
    reused = os.getppid()  # a live process, not this one: the killed run's pid, given to another process
    assert pid_alive(reused)
    with ws.store.transaction():
        ws.store.db.execute(
            update(runs).where(runs.c.id == killed.id).values(pid=reused, heartbeat_at="2026-01-01T00:00:00+00:00")
        )

    run = ws.run_export(EXPORT)

    assert run.status is RunStatus.SUCCEEDED and run.counts == counts(created=5)
    statuses = {r.id: r.status for r in ws.list_runs(EXPORT)}
    assert statuses == {killed.id: RunStatus.INTERRUPTED, run.id: RunStatus.SUCCEEDED}


def test_a_running_run_beats_its_heartbeat(ws: Workspace, tmp_path: Path) -> None:
    setup_export(ws, tmp_path, people(1))
    run = ws.store.start_run(ws.get_export(EXPORT), "manual", "ada")
    old = "2026-01-01T00:00:00+00:00"
    beat = select(runs.c.heartbeat_at).where(runs.c.id == run.id)
    with ws.store.transaction():
        ws.store.db.execute(update(runs).where(runs.c.id == run.id).values(heartbeat_at=old))

    with ws.store.heartbeat(run.id, every=0.01):
        for _ in range(1000):  # waits for the beat; asserts nothing about how long it took
            if ws.store.db.execute(beat).scalar() != old:
                break
            threading.Event().wait(0.01)

    assert ws.store.db.execute(beat).scalar() != old
    ws.store.reap_stale_runs()
    assert ws.store.get_run(run.id).status is RunStatus.RUNNING  # a fresh heartbeat, a live pid: not stale
    ws.store.run_ended(run.id)
