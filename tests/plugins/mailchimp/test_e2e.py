"""End to end: the real CLI in a subprocess against the Mailchimp sandbox on 127.0.0.1."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from segport.testing import files
from segport.testing.files import write_rows
from segport.testing.operator import Operator
from segport_mailchimp.sandbox import MailchimpSandbox

pytestmark = pytest.mark.e2e
SEGMENTS = ("VIP", "Newsletter")


@pytest.fixture
def sandbox() -> Iterator[MailchimpSandbox]:
    server = MailchimpSandbox(seed=3)
    server.start()
    yield server
    server.stop()


def email(i: int) -> str:
    return f"person{i}@shop.segport-test.net"


def write_profiles(
    path: Path, count: int, renamed: frozenset[int] = frozenset(), fake: frozenset[int] = frozenset()
) -> Path:
    def row(i: int) -> list[str]:
        address = f"fake{i}@shop.segport-test.net" if i in fake else email(i).upper() if i % 7 == 0 else email(i)
        first = "Renamed" if i in renamed else f"First{i}"
        return [f"p{i:05d}", address, first, f"Last{i}", "gold" if i % 4 == 0 else "basic"]

    return write_rows(path, ["id", "email", "first_name", "last_name", "tier"], map(row, range(count)))


def write_keys(path: Path, keys: list[int]) -> Path:
    return files.write_keys(path, (f"p{i:05d}" for i in keys))


def setup(
    tmp_path: Path,
    sandbox: MailchimpSandbox,
    count: int = 1200,
    *,
    fake: frozenset[int] = frozenset(),
    options: tuple[str, ...] = (),
    maps: tuple[str, ...] = ("FNAME=first_name", "LNAME=last_name"),
    database_url: str | None = None,
) -> Operator:
    op = Operator.init(tmp_path / "ws", database_url=database_url)  # PostgreSQL: as workers would share it
    op("profiles", "load", str(write_profiles(tmp_path / "profiles.csv", count, fake=fake)))
    op("segments", "define", "VIP", "--where", "tier = 'gold'")
    op("segments", "load", "Newsletter", str(write_keys(tmp_path / "newsletter.txt", list(range(0, count, 2)))))
    config = json.dumps(sandbox.demo_connection())
    op("connections", "add", "mc", "--type", "mailchimp", "--config", config, "--agree-privacy")
    audience = sandbox.demo_export_options()["audience_id"]
    args = ["exports", "add", "news", "--connection", "mc", "--email", "email", "--option", f"audience_id={audience}"]
    for segment in SEGMENTS:
        args += ["--segment", segment]
    for item in maps:
        args += ["--map", item]
    for item in options:
        args += ["--option", item]
    op(*args)
    return op


def members(sandbox: MailchimpSandbox) -> dict[str, dict[str, Any]]:
    state = sandbox.state()
    audience = sandbox.demo_export_options()["audience_id"]
    found: dict[str, dict[str, Any]] = state["lists"][audience]["members"]
    return found


def expected_tags(i: int) -> set[str]:
    return ({"VIP"} if i % 4 == 0 else set()) | ({"Newsletter"} if i % 2 == 0 else set())


def test_first_run_lands_exactly_and_delta_sends_only_the_change(
    tmp_path: Path, sandbox: MailchimpSandbox, database_url: str | None
) -> None:
    op = setup(tmp_path, sandbox, database_url=database_url)
    seen = len(sandbox.requests_log)
    first = op.run_json("news")
    assert first["status"] == "succeeded"
    assert first["requests"] == len(sandbox.requests_log) - seen  # every call, pre-flight included
    landed = members(sandbox)
    selected = [i for i in range(1200) if expected_tags(i)]
    assert set(landed) == {email(i) for i in selected}
    for i in selected:
        member = landed[email(i)]
        assert member["status"] == "subscribed"
        assert member["merge_fields"]["FNAME"] == f"First{i}" and member["merge_fields"]["LNAME"] == f"Last{i}"
        assert set(member["tags"]) == expected_tags(i)
    assert first["counts"]["created"] == len(selected)

    op("profiles", "load", str(write_profiles(tmp_path / "profiles.csv", 1200, renamed=frozenset({0, 2}))))
    before = len(sandbox.requests_log)
    second = op.run_json("news")
    assert second["counts"]["updated"] == 2 and second["counts"]["unchanged"] == len(selected) - 2
    puts = [path for method, path in sandbox.requests_log[before:] if method == "PUT"]
    assert len(puts) == 2
    assert members(sandbox)[email(0)]["merge_fields"]["FNAME"] == "Renamed"


def test_a_delta_with_many_updates_sends_one_batch_job_not_one_put_each(
    tmp_path: Path, sandbox: MailchimpSandbox
) -> None:
    op = setup(tmp_path, sandbox)
    sandbox.add_member(email(10), status="unsubscribed")  # created before the export knew: stays unsubscribed
    first = op.run_json("news")
    tags_calls = [p for m, p in sandbox.requests_log if m == "POST" and "/segments/" in p]
    assert first["counts"]["created"] == 599 and first["counts"]["skipped"] == 1
    # new members' tags land with the batch create (docs/providers/mailchimp.md#tags-in-batch-members)
    assert len(tags_calls) == 1
    assert set(members(sandbox)[email(0)]["tags"]) == {"VIP", "Newsletter"}
    assert members(sandbox)[email(10)]["tags"] == ["Newsletter"]

    renamed = frozenset({0, 2, 4, 8, 10, 12, 16})
    op("profiles", "load", str(write_profiles(tmp_path / "profiles.csv", 1200, renamed=renamed)))
    before = len(sandbox.requests_log)
    second = op.run_json("news")

    sent = sandbox.requests_log[before:]
    assert second["status"] == "succeeded" and second["requests"] == len(sent)
    assert (second["counts"]["updated"], second["counts"]["skipped"]) == (6, 1)
    assert [m for m, _ in sent].count("PUT") == 0
    assert sent.count(("POST", "/3.0/batches")) == 1
    assert any(p.startswith("/batch-results/") for _, p in sent)
    landed = members(sandbox)
    assert all(landed[email(i)]["merge_fields"]["FNAME"] == "Renamed" for i in renamed)
    assert landed[email(10)]["status"] == "unsubscribed"


def test_leaving_a_segment_removes_only_its_tag(tmp_path: Path, sandbox: MailchimpSandbox) -> None:
    op = setup(tmp_path, sandbox)
    op.run_json("news")
    op("segments", "load", "Newsletter", str(write_keys(tmp_path / "newsletter.txt", list(range(2, 1200, 2)))))
    run = op.run_json("news")
    assert run["counts"]["updated"] == 1
    member = members(sandbox)[email(0)]
    assert set(member["tags"]) == {"VIP"}  # Newsletter removed, VIP kept
    assert member["status"] == "subscribed" and member["merge_fields"]["FNAME"] == "First0"


def test_existing_unsubscribed_member_keeps_its_status(tmp_path: Path, sandbox: MailchimpSandbox) -> None:
    sandbox.add_member(email(4), status="unsubscribed")
    sandbox.add_member(email(6), status="cleaned")
    op = setup(tmp_path, sandbox)
    run = op.run_json("news")
    landed = members(sandbox)
    assert landed[email(4)]["status"] == "unsubscribed"
    assert landed[email(6)]["status"] == "cleaned"
    assert run["counts"]["skipped"] == 2
    assert run["status"] == "succeeded"


def test_fake_addresses_land_in_the_reject_file_with_mailchimps_reason(
    tmp_path: Path, sandbox: MailchimpSandbox
) -> None:
    op = setup(tmp_path, sandbox, fake=frozenset({2, 4}))
    run = op.run_json("news")
    assert run["counts"]["rejected"] == 2
    lines = [json.loads(line) for line in Path(run["reject_file"]).read_text(encoding="utf-8").splitlines()]
    assert {line["key"] for line in lines} == {"p00002", "p00004"}
    assert all("looks fake or invalid" in line["reason"] for line in lines)


@pytest.mark.parametrize(
    ("breakage", "code", "words"),
    [
        ("revoke", 8, ("refused the credentials",)),
        ("audience", 9, ("does not exist", "audience_id")),
        ("merge_field", 3, ("no merge field", "TIER")),
    ],
)
def test_run_level_problems_stop_before_sending(
    tmp_path: Path, sandbox: MailchimpSandbox, breakage: str, code: int, words: tuple[str, ...]
) -> None:
    maps = ("FNAME=first_name", "TIER=tier") if breakage == "merge_field" else ("FNAME=first_name",)
    op = setup(tmp_path, sandbox, maps=maps)
    if breakage == "revoke":
        sandbox.revoke_key()
    if breakage == "audience":
        op("exports", "edit", "news", "--option", "audience_id=0000000000")
    result = op("exports", "run", "news", check=False)
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    for word in words:
        assert word in lines[0]
    assert members(sandbox) == {}
    key = sandbox.demo_connection()["api_key"]
    assert key not in result.stdout + result.stderr


def test_a_killed_run_is_interrupted_and_the_next_run_finishes_exactly(
    tmp_path: Path, sandbox: MailchimpSandbox, database_url: str | None, committed_so_far: Callable[..., int]
) -> None:
    op = setup(tmp_path, sandbox, count=12000, database_url=database_url)
    sandbox.set_faults(latency_ms=150)
    process = op.popen("exports", "run", "news")
    deadline = time.monotonic() + 60
    while committed_so_far(op.home, database_url) < 1000 and time.monotonic() < deadline:  # kill after 2+ batches
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    sandbox.set_faults(latency_ms=0)
    runs = json.loads(op("runs", "list", "--json").stdout)
    assert runs[0]["status"] == "interrupted"
    committed = runs[0]["counts"]["created"]
    landed_at_kill = len(members(sandbox))
    assert 0 < committed <= landed_at_kill
    finished = op.run_json("news")
    assert finished["status"] == "succeeded"
    selected = [i for i in range(12000) if expected_tags(i)]
    landed = members(sandbox)
    assert set(landed) == {email(i) for i in selected}
    assert all(set(landed[email(i)]["tags"]) == expected_tags(i) for i in selected)
    assert all(landed[email(i)]["merge_fields"]["FNAME"] == f"First{i}" for i in selected)
    # The second run sends only what the first did not commit; what it sends twice (members that
    # landed but were not committed) is at most the batches in flight: 10 of 500.
    assert finished["counts"]["created"] + finished["counts"]["updated"] == len(selected) - committed
    assert finished["counts"]["updated"] == landed_at_kill - committed <= 10 * 500


# -- consent: archived and unsubscribed members (docs/providers/mailchimp.md#archived-and-unsubscribed-members) --
def test_a_new_export_never_re_adds_archived_members(
    tmp_path: Path, sandbox: MailchimpSandbox, database_url: str | None
) -> None:
    sandbox.add_member(email(4), "unsubscribed")  # they unsubscribed themselves ...
    sandbox.add_member(email(4), "archived")  # ... and were archived: Mailchimp shows only "archived"
    sandbox.add_member(email(6), "archived")  # archived, earlier status unknown
    op = setup(tmp_path, sandbox, count=40, database_url=database_url)

    run = op.run_json("news")

    landed = members(sandbox)
    assert landed[email(4)]["status"] == landed[email(6)]["status"] == "archived"
    assert run["status"] == "succeeded"
    assert (run["counts"]["created"], run["counts"]["skipped"]) == (18, 2)


def test_a_full_run_leaves_an_unsubscribed_then_archived_member_alone(
    tmp_path: Path, sandbox: MailchimpSandbox
) -> None:
    op = setup(tmp_path, sandbox, count=40)
    assert op.run_json("news")["counts"]["created"] == 20
    sandbox.add_member(email(4), "unsubscribed")  # unsubscribed themselves, then archived
    sandbox.add_member(email(4), "archived")

    run = op.run_json("news", "--full")

    assert members(sandbox)[email(4)]["status"] == "archived"
    assert run["counts"]["skipped"] == 1 and run["counts"]["created"] == 0


def test_on_exit_archive_round_trip_re_adds_only_who_segport_archived_while_subscribed(
    tmp_path: Path, sandbox: MailchimpSandbox, database_url: str | None
) -> None:
    op = setup(tmp_path, sandbox, count=40, options=("on_exit=archive",), database_url=database_url)
    op.run_json("news")
    sandbox.add_member(email(2), "unsubscribed")  # unsubscribes themselves through a campaign's link
    newsletter = [i for i in range(0, 40, 2) if i not in (2, 10)]  # 2 and 10 leave every exported segment
    op("segments", "load", "Newsletter", str(write_keys(tmp_path / "newsletter.txt", newsletter)))
    left = op.run_json("news")
    landed = members(sandbox)
    assert landed[email(2)]["status"] == landed[email(10)]["status"] == "archived"
    assert left["counts"]["updated"] == 2

    # both come back, with a changed name: segport re-adds only the one it archived while subscribed
    op("segments", "load", "Newsletter", str(write_keys(tmp_path / "newsletter.txt", list(range(0, 40, 2)))))
    op("profiles", "load", str(write_profiles(tmp_path / "profiles.csv", 40, renamed=frozenset({2, 10}))))
    back = op.run_json("news")
    again = op.run_json("news", "--full")

    landed = members(sandbox)
    assert landed[email(2)]["status"] == "archived"  # never subscribed again
    assert landed[email(10)]["status"] == "subscribed" and landed[email(10)]["tags"] == ["Newsletter"]
    assert landed[email(10)]["merge_fields"]["FNAME"] == "Renamed"
    assert back["counts"]["skipped"] == 1 and again["counts"]["skipped"] == 1
    assert back["status"] == again["status"] == "succeeded"


def test_an_api_unsubscribed_member_is_never_subscribed_again_by_segport(
    tmp_path: Path, sandbox: MailchimpSandbox
) -> None:
    sandbox.add_member(email(4), "unsubscribed", unsubscribed_by="api")  # the platform would allow it
    op = setup(tmp_path, sandbox, count=40)
    first = op.run_json("news")
    full = op.run_json("news", "--full")
    assert members(sandbox)[email(4)]["status"] == "unsubscribed"
    assert first["counts"]["skipped"] == full["counts"]["skipped"] == 1


def test_a_dry_run_shows_each_record_with_its_action_fields_and_reasons(
    tmp_path: Path, sandbox: MailchimpSandbox, database_url: str | None
) -> None:
    def rows(renamed: bool, extra: bool) -> Path:
        people = [[f"p{i:05d}", email(i), f"First{i}", f"Last{i}", "gold" if i % 4 == 0 else "basic"] for i in range(8)]
        if renamed:
            people[0][2] = "Renamed"
        if extra:
            people += [
                ["p00008", "not-an-email", "First8", "Last8", "gold"],  # refused before sending
                ["p00010", email(2), "First10", "Last10", "gold"],  # p00002's address: sent once, for p00002
                ["p00012", email(12), "First12", "Last12", "gold"],  # new
            ]
        return write_rows(tmp_path / "profiles.csv", ["id", "email", "first_name", "last_name", "tier"], people)

    op = Operator.init(tmp_path / "ws", database_url=database_url)
    op("profiles", "load", str(rows(False, False)))
    op("segments", "define", "VIP", "--where", "tier = 'gold'")
    op("segments", "load", "Newsletter", str(write_keys(tmp_path / "newsletter.txt", [0, 2, 4, 6])))
    op("connections", "add", "mc", "--type", "mailchimp", "--config", json.dumps(sandbox.demo_connection()),
       "--agree-privacy")
    audience = sandbox.demo_export_options()["audience_id"]
    op("exports", "add", "news", "--connection", "mc", "--email", "email", "--option", f"audience_id={audience}",
       "--segment", "VIP", "--segment", "Newsletter", "--map", "FNAME=first_name", "--map", "LNAME=last_name")

    before = sandbox.state()
    first = op.run_json("news", "--dry-run")  # a fresh audience: the tags are missing
    assert first["would_create"] == ["tag VIP", "tag Newsletter"] and first["plan"]["would_create"] == 2
    assert first["plan"]["created"] == 4 and "records" not in first
    assert first["requests"] > 0 and sandbox.state() == before  # the pre-flight read, and changed nothing
    assert op.run_json("news")["counts"]["created"] == 4

    op("profiles", "load", str(rows(True, True)))
    op("segments", "load", "Newsletter", str(write_keys(tmp_path / "newsletter.txt", [0, 2, 4])))  # p00006 leaves
    before = sandbox.state()
    plan = op.run_json("news", "--dry-run", "--show-records")
    assert sandbox.state() == before
    assert plan["would_create"] == []
    counts = {k: plan["plan"][k] for k in ("created", "updated", "unchanged", "exits", "rejected", "skipped")}
    assert counts == {"created": 1, "updated": 1, "unchanged": 2, "exits": 1, "rejected": 1, "skipped": 1}
    records = {r["key"]: r for r in plan["records"]}
    # up to N of each action, rejects and exits first (then skips, creates, updates)
    assert [r["key"] for r in plan["records"]] == ["p00008", "p00006", "p00010", "p00012", "p00000"]
    assert plan["records_not_shown"] == {}
    assert records["p00000"]["action"] == "update" and records["p00000"]["old_known"] is False
    renamed = {"FNAME": {"old": None, "new": "Renamed"}, "LNAME": {"old": None, "new": "Last0"}}
    assert records["p00000"]["fields"] == renamed
    assert records["p00008"]["action"] == "reject" and "email" in records["p00008"]["reason"]
    assert records["p00010"]["action"] == "skip" and "duplicate email" in records["p00010"]["reason"]
    assert records["p00012"]["action"] == "create" and records["p00012"]["markers_added"] == ["VIP"]
    assert records["p00012"]["fields"]["FNAME"]["new"] == "First12"
    assert records["p00006"] == {
        "action": "exit", "key": "p00006", "email": email(6), "fields": {}, "old_known": False,
        "markers_added": [], "markers_removed": ["Newsletter"], "reason": None,
    }

    shown = op("exports", "run", "news", "--dry-run", "--show-records", "2")
    assert "  created: 1  (" in shown.stdout and "  exits: 1  (" in shown.stdout and "  rejected: 1  (" in shown.stdout
    assert "records (5 of 5 that would be sent, rejected or skipped; up to 2 of each action" in shown.stdout
    assert f"update p00000 {email(0)}; fields: FNAME → \"Renamed\", LNAME → \"Last0\"" in shown.stdout
    assert "reject p00008 not-an-email; reason: " in shown.stdout and "not shown" not in shown.stdout
    lines = shown.stdout.splitlines()
    assert lines.index(next(x for x in lines if "reject p00008" in x)) < lines.index(
        next(x for x in lines if "update p00000" in x)
    )
    assert "old values are not known" in shown.stdout
    refused = op("exports", "run", "news", "--show-records", check=False)
    assert refused.returncode == 2 and "--dry-run" in refused.stderr

    run = op.run_json("news")  # the run does what the plan said, in the same words
    assert run["counts"]["created"] == 1 and run["counts"]["updated"] == 2  # the exit is counted updated
    assert run["counts"]["rejected"] == 1 and run["counts"]["skipped"] == 1
    assert members(sandbox)[email(6)]["tags"] == []


def test_removed_profiles_lose_their_tags_at_the_next_run_and_stay_subscribed(
    tmp_path: Path, sandbox: MailchimpSandbox, database_url: str | None
) -> None:
    op = setup(tmp_path, sandbox, count=40, database_url=database_url)
    assert op.run_json("news")["counts"]["created"] == 20
    by_key = json.loads(op("profiles", "remove", "p00000", "p00002", "--yes", "--json").stdout)
    assert by_key == {"removed": 2, "not_found": 0}
    by_filter = json.loads(op("profiles", "remove", "--where", "id = 'p00004'", "--yes", "--json").stdout)
    assert by_filter == {"removed": 1, "not_found": 0}
    kept = [i for i in range(40) if i not in (0, 2, 4, 6)]
    smaller = write_rows(tmp_path / "smaller.csv", ["id", "email", "first_name", "last_name", "tier"],
                         ([f"p{i:05d}", email(i), f"First{i}", f"Last{i}", "gold" if i % 4 == 0 else "basic"]
                          for i in kept))
    refused = op("profiles", "load", str(smaller), "--replace", check=False)  # no terminal here: needs --yes
    assert refused.returncode == 2 and "--yes" in refused.stderr
    replaced = json.loads(op("profiles", "load", str(smaller), "--replace", "--yes", "--json").stdout)
    assert (replaced["removed"], replaced["added"], replaced["profiles"]) == (1, 0, 36)
    before = len(sandbox.requests_log)

    run = op.run_json("news")

    assert run["status"] == "succeeded" and run["counts"]["updated"] == 4  # the four exits
    landed = members(sandbox)
    for i in (0, 2, 4, 6):  # left with their tags removed, never unsubscribed, archived or deleted
        assert landed[email(i)]["tags"] == [] and landed[email(i)]["status"] == "subscribed"
        assert landed[email(i)]["merge_fields"]["FNAME"] == f"First{i}"
    for i in (8, 10, 12):
        assert set(landed[email(i)]["tags"]) == expected_tags(i)
    assert not [p for m, p in sandbox.requests_log[before:] if m == "DELETE" or "delete-permanent" in p]
    assert op.run_json("news")["counts"].get("updated", 0) == 0  # exits are done once
