"""Crash-resume and run-level failures against the Mailchimp sandbox, through the real CLI (issue 7, items 2, 3).

A run is killed (SIGKILL) or loses its key or audience when the sandbox receives a seeded batch call;
the provider's state (``sandbox.state()``, never segport's records) must end exact after the next run,
and what is sent twice is bounded by what was in flight. Sends are counted per address by the sandbox
from the bodies of the batch-create calls (``POST /lists/{id}``), the only call that carries new people.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from segport import Workspace
from segport.testing.operator import Operator
from segport.testing.sandbox import Request, WatchedWrites
from segport_mailchimp.destination import LIMITS
from segport_mailchimp.sandbox import MailchimpSandbox

pytestmark = pytest.mark.e2e

COUNT = 12_000  # profiles; half are selected: 6,000 members, 12 batch calls of 500
# The dispatcher's window (core/dispatcher.py): no more than max_concurrency batches are ever sent and
# not yet recorded, so a kill re-sends at most that many.
WINDOW = LIMITS.max_concurrency * LIMITS.batch_size  # batches sent but not yet recorded, at most
SEGMENTS = ("VIP", "Newsletter")
BATCH_CREATE = re.compile(r"/3\.0/lists/[^/]+")


class WatchedSandbox(WatchedWrites, MailchimpSandbox):
    """The Mailchimp sandbox, counting the addresses of every batch create and acting on the Nth one."""

    def written(self, req: Request) -> list[str] | None:
        if req.method != "POST" or not BATCH_CREATE.fullmatch(req.path):
            return None
        return [str(m["email_address"]) for m in req.json().get("members") or []]


@pytest.fixture
def sandbox() -> Iterator[WatchedSandbox]:
    with WatchedSandbox(seed=7) as server:
        yield server


def email(i: int) -> str:
    return f"person{i}@shop.segport-test.net"


def expected_tags(i: int) -> set[str]:
    return ({"VIP"} if i % 4 == 0 else set()) | ({"Newsletter"} if i % 3 == 0 else set())


def selected(count: int) -> dict[str, int]:
    return {email(i): i for i in range(count) if expected_tags(i)}


SELECTED = selected(COUNT)


def make_workspace(tmp_path: Path, sandbox: MailchimpSandbox, count: int = COUNT) -> Operator:
    """Profiles, a filter segment, a static segment, a connection and an export (set up in-process: fast)."""
    home = tmp_path / "ws"
    profiles = tmp_path / "profiles.csv"
    rows = ["id,email,first_name,last_name,tier"]
    rows += [f"p{i:05d},{email(i)},First{i},Last{i},{'gold' if i % 4 == 0 else 'basic'}" for i in range(count)]
    profiles.write_text("\n".join(rows) + "\n", encoding="utf-8")
    newsletter = tmp_path / "newsletter.txt"
    newsletter.write_text("".join(f"p{i:05d}\n" for i in range(0, count, 3)), encoding="utf-8")
    with Workspace.create(home, "ada") as ws:
        ws.load_profiles(profiles)
        ws.define_segment("VIP", "tier = 'gold'")
        ws.load_segment("Newsletter", newsletter)
        ws.add_connection("mc", "mailchimp", sandbox.demo_connection(), agree_privacy=True)
        ws.add_export(
            "news",
            connection="mc",
            segments=list(SEGMENTS),
            email_field="email",
            mapping={"FNAME": "first_name", "LNAME": "last_name"},
            options=sandbox.demo_export_options(),
        )
    return Operator(home)


def members(sandbox: MailchimpSandbox) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = sandbox.state()["lists"][sandbox.audience_id]["members"]
    return found


def sync_state(home: Path) -> dict[str, set[str]]:
    """What segport recorded as acknowledged: email -> markers."""
    db = sqlite3.connect(home / "segport.db")
    try:
        rows = db.execute("SELECT email, markers FROM sync_state").fetchall()
    finally:
        db.close()
    return {row[0]: set(json.loads(row[1])) for row in rows}


def assert_exact(sandbox: MailchimpSandbox, home: Path) -> None:
    """The audience holds exactly the selected people, each with its fields, tags and status."""
    landed = members(sandbox)
    assert set(landed) == set(SELECTED)
    for address, i in SELECTED.items():
        member = landed[address]
        assert member["status"] == "subscribed", address
        assert member["merge_fields"] == {"FNAME": f"First{i}", "LNAME": f"Last{i}"}, address
        assert set(member["tags"]) == expected_tags(i), address
    assert sync_state(home) == {address: expected_tags(i) for address, i in SELECTED.items()}


def assert_one_line_error(result: Any, code: int, *words: str) -> None:
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_the_setup_selects_twelve_batches() -> None:
    assert len(SELECTED) == 6000 and math.ceil(len(SELECTED) / LIMITS.batch_size) == 12


@pytest.mark.parametrize("seed", [1, 7, 19])  # kill at batch call 3 (50 ms latency), 6 (0 ms), 11 (0 ms)
def test_a_run_killed_at_a_random_batch_call_resumes_exactly(
    tmp_path: Path, sandbox: WatchedSandbox, seed: int
) -> None:
    op = make_workspace(tmp_path, sandbox)
    rng = random.Random(seed)
    kill_at = rng.randint(1, math.ceil(len(SELECTED) / LIMITS.batch_size))
    sandbox.set_faults(latency_ms=rng.choice([0, 20, 50]))
    process = op.popen("exports", "run", "news")
    sandbox.act_at, sandbox.action = kill_at, lambda: os.kill(process.pid, signal.SIGKILL)
    assert process.wait(timeout=120) == -signal.SIGKILL  # killed mid-run, not finished
    sandbox.settle()
    sandbox.set_faults(latency_ms=0)

    landed_at_kill = set(members(sandbox))
    committed = sync_state(op.home)
    assert set(committed) <= landed_at_kill  # nothing recorded that the platform does not hold
    assert landed_at_kill == set(sandbox.sent[1])  # every call that arrived landed (no faults here)
    runs = json.loads(op("runs", "list", "--json").stdout)
    assert [r["status"] for r in runs] == ["interrupted"]
    shown = json.loads(op("runs", "show", str(runs[0]["id"]), "--json").stdout)
    assert shown["status"] == "interrupted" and "killed or crashed" in shown["error"]
    assert shown["counts"].get("created", 0) == len(committed)  # the record counts what was committed

    sandbox.phase = 2
    finished = op.run_json("news")  # the lock of the killed run is released: this run is not refused

    assert finished["status"] == "succeeded"
    assert_exact(sandbox, op.home)
    resent = set(sandbox.sent[2])
    assert resent == set(SELECTED) - set(committed)  # the next run sends only what was not recorded
    twice = set(sandbox.sent[1]) & resent
    assert twice == landed_at_kill - set(committed)
    assert max(sandbox.sent[1].values()) == 1 and max(sandbox.sent[2].values()) == 1
    # What landed but was not recorded was in flight when the process died: within the dispatcher's window.
    assert len(twice) <= WINDOW
    assert finished["counts"]["created"] + finished["counts"]["updated"] == len(resent)
    assert finished["counts"]["updated"] == len(twice)
    assert finished["counts"]["unchanged"] == len(committed)


def test_a_run_killed_while_its_commits_wait_resends_at_most_its_concurrency_in_batches(
    tmp_path: Path, sandbox: WatchedSandbox
) -> None:
    count = 21_000  # 10,500 selected: 21 batch calls
    op = make_workspace(tmp_path, sandbox, count)
    writer = sqlite3.connect(op.home / "segport.db", timeout=10, check_same_thread=False)

    def lock_the_workspace() -> None:  # as a 'profiles load' in another process would, from the first call on
        writer.execute("BEGIN IMMEDIATE")

    sandbox.act_at, sandbox.action = 1, lock_the_workspace
    process = op.popen("exports", "run", "news")
    try:
        # Kill once twice the writer's concurrency has been sent (or after 5 s, if the dispatcher stops sooner).
        wait_for_calls = time.monotonic() + 5
        while sandbox.writes < 2 * LIMITS.max_concurrency and time.monotonic() < wait_for_calls:
            time.sleep(0.01)
        sandbox.settle()
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        writer.rollback()
        writer.close()

    landed = set(members(sandbox))
    unrecorded = landed - set(sync_state(op.home))
    assert unrecorded == set(sandbox.sent[1]) and len(selected(count)) > len(landed) > 0
    assert len(unrecorded) <= LIMITS.max_concurrency * LIMITS.batch_size  # what the next run sends twice


def restore_audience(sandbox: MailchimpSandbox) -> None:
    """Undo :meth:`MailchimpSandbox.delete_list` (the sandbox has no public hook for it)."""
    sandbox._data.deleted = False


def restore_key(sandbox: MailchimpSandbox) -> None:
    """Undo :meth:`MailchimpSandbox.revoke_key` (the key is valid again, as after a rotation back)."""
    sandbox.revoked = False


@pytest.mark.parametrize(
    ("breakage", "restore", "code", "words"),
    [
        (MailchimpSandbox.revoke_key, restore_key, 8, ("refused the credentials",)),
        (MailchimpSandbox.delete_list, restore_audience, 9, ("audience",)),
    ],
    ids=["key-revoked", "audience-deleted"],
)
def test_a_run_level_failure_mid_run_stops_cleanly_and_the_next_run_continues(
    tmp_path: Path,
    sandbox: WatchedSandbox,
    breakage: Callable[[MailchimpSandbox], None],
    restore: Callable[[MailchimpSandbox], None],
    code: int,
    words: tuple[str, ...],
) -> None:
    op = make_workspace(tmp_path, sandbox)
    # The third batch call and every later one fail; the two before it are answered first.
    sandbox.act_at, sandbox.drain, sandbox.action = 3, True, lambda: breakage(sandbox)

    result = op("exports", "run", "news", check=False)

    assert_one_line_error(result, code, *words)
    assert sandbox.api_key not in result.stdout + result.stderr
    sandbox.settle()
    landed = members(sandbox)
    assert len(landed) == 2 * LIMITS.batch_size  # the two calls before the breakage, nothing after
    recorded = sync_state(op.home)
    assert recorded == {address: set(landed[address]["tags"]) for address in landed}  # acknowledged = recorded
    [run] = json.loads(op("runs", "list", "--json").stdout)
    assert run["status"] == "failed" and run["counts"]["created"] == len(landed)

    restore(sandbox)
    sandbox.phase = 2
    finished = op.run_json("news")

    assert finished["status"] == "succeeded"
    assert_exact(sandbox, op.home)
    assert set(sandbox.sent[2]) == set(SELECTED) - set(recorded)  # nothing recorded is sent again
    assert finished["counts"]["created"] == len(SELECTED) - len(recorded)
