"""Crash-resume and run-level failures against the Campaign Monitor sandbox, through the real CLI (issue 7,
items 2, 3).

A run is killed (SIGKILL) or loses its key or list when the sandbox receives a seeded import call; the
provider's state (``sandbox.state()``, never segport's records) must end exact after the next run, and
what is sent twice is bounded by what was in flight. Sends are counted per address by the sandbox from
the bodies of the ``import.json`` calls, the only call that carries subscribers.
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import sqlite3
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from segport import Workspace
from segport.testing.operator import Operator
from segport.testing.sandbox import Request, WatchedWrites
from segport_campaignmonitor.destination import LIMITS
from segport_campaignmonitor.sandbox import CampaignMonitorSandbox

pytestmark = pytest.mark.e2e

COUNT = 12_000  # profiles; half are selected: 6,000 subscribers, 6 imports of 1,000
# The dispatcher's window (core/dispatcher.py): no more than max_concurrency batches are ever sent and
# not yet recorded, so a kill re-sends at most that many.
WINDOW = LIMITS.max_concurrency * LIMITS.batch_size  # batches sent but not yet recorded, at most
SEGMENTS = ("VIP", "Newsletter")


def is_import(req: Request) -> bool:
    return req.method == "POST" and req.path.endswith("/import.json")


class WatchedSandbox(WatchedWrites, CampaignMonitorSandbox):
    """The Campaign Monitor sandbox, counting the addresses of every import and acting on the Nth one."""

    def written(self, req: Request) -> list[str] | None:
        if not is_import(req):
            return None
        return [str(row["EmailAddress"]) for row in req.json().get("Subscribers") or []]


@pytest.fixture
def sandbox() -> Iterator[WatchedSandbox]:
    with WatchedSandbox(seed=8) as server:
        yield server


def email(i: int) -> str:
    return f"person{i}@shop.segport-test.net"


def expected(i: int) -> set[str]:
    return ({"VIP"} if i % 4 == 0 else set()) | ({"Newsletter"} if i % 3 == 0 else set())


SELECTED = {email(i): i for i in range(COUNT) if expected(i)}


def make_workspace(tmp_path: Path, sandbox: CampaignMonitorSandbox) -> Operator:
    """Profiles, a filter segment, a static segment, a connection and an export (set up in-process: fast)."""
    home = tmp_path / "ws"
    profiles = tmp_path / "profiles.csv"
    rows = ["id,email,first_name,last_name,tier"]
    rows += [f"p{i:05d},{email(i)},First{i},Last{i},{'gold' if i % 4 == 0 else 'basic'}" for i in range(COUNT)]
    profiles.write_text("\n".join(rows) + "\n", encoding="utf-8")
    newsletter = tmp_path / "newsletter.txt"
    newsletter.write_text("".join(f"p{i:05d}\n" for i in range(0, COUNT, 3)), encoding="utf-8")
    with Workspace.create(home, "ada") as ws:
        ws.load_profiles(profiles)
        ws.define_segment("VIP", "tier = 'gold'")
        ws.load_segment("Newsletter", newsletter)
        ws.add_connection("cm", "campaignmonitor", sandbox.demo_connection(), agree_privacy=True)
        ws.add_export(
            "news",
            connection="cm",
            segments=list(SEGMENTS),
            email_field="email",
            mapping={"Name": "first_name+last_name"},
            options=sandbox.demo_export_options(),
        )
    return Operator(home)


def subscribers(sandbox: CampaignMonitorSandbox) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = sandbox.state()["lists"][sandbox.list_id]["subscribers"]
    return found


def options_of(subscriber: dict[str, Any]) -> set[str]:
    value = subscriber["CustomFields"].get("Segments") or []
    return set(value if isinstance(value, list) else [value])


def sync_state(home: Path) -> dict[str, set[str]]:
    """What segport recorded as acknowledged: email -> markers."""
    db = sqlite3.connect(home / "segport.db")
    try:
        rows = db.execute("SELECT email, markers FROM sync_state").fetchall()
    finally:
        db.close()
    return {row[0]: set(json.loads(row[1])) for row in rows}


def assert_exact(sandbox: CampaignMonitorSandbox, home: Path) -> None:
    """The list holds exactly the selected people, each with its name, options and state; rule segments exist."""
    landed = subscribers(sandbox)
    assert set(landed) == set(SELECTED)
    for address, i in SELECTED.items():
        subscriber = landed[address]
        assert subscriber["State"] == "Active", address
        assert subscriber["Name"] == f"First{i} Last{i}", address
        assert options_of(subscriber) == expected(i), address
    titles = {s["Title"] for s in sandbox.state()["lists"][sandbox.list_id]["segments"]}
    assert set(SEGMENTS) <= titles
    assert sync_state(home) == {address: expected(i) for address, i in SELECTED.items()}


def assert_one_line_error(result: Any, code: int, *words: str) -> None:
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_the_setup_selects_six_imports() -> None:
    assert len(SELECTED) == 6000 and math.ceil(len(SELECTED) / LIMITS.batch_size) == 6


@pytest.mark.parametrize("seed", [1, 12, 19])  # kill at import 2 (50 ms latency), 4 (20 ms), 6 (0 ms)
def test_a_run_killed_at_a_random_import_resumes_exactly(tmp_path: Path, sandbox: WatchedSandbox, seed: int) -> None:
    op = make_workspace(tmp_path, sandbox)
    rng = random.Random(seed)
    kill_at = rng.randint(1, math.ceil(len(SELECTED) / LIMITS.batch_size))
    sandbox.set_faults(latency_ms=rng.choice([0, 20, 50]))
    process = op.popen("exports", "run", "news")
    sandbox.act_at, sandbox.action = kill_at, lambda: os.kill(process.pid, signal.SIGKILL)
    assert process.wait(timeout=120) == -signal.SIGKILL  # killed mid-run, not finished
    sandbox.settle()
    sandbox.set_faults(latency_ms=0)

    landed_at_kill = set(subscribers(sandbox))
    committed = sync_state(op.home)
    assert set(committed) <= landed_at_kill  # nothing recorded that the platform does not hold
    assert landed_at_kill == set(sandbox.sent[1])  # every import that arrived landed (no faults here)
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
    assert finished["counts"]["created"] == len(resent)
    assert finished["counts"]["unchanged"] == len(committed)


def restore_list(sandbox: CampaignMonitorSandbox) -> None:
    """Undo :meth:`CampaignMonitorSandbox.delete_list` (no public hook; its rule segments stay deleted)."""
    sandbox._data.deleted = False


def restore_key(sandbox: CampaignMonitorSandbox) -> None:
    """Undo :meth:`CampaignMonitorSandbox.revoke_key` (the key is valid again)."""
    sandbox.revoked = False


@pytest.mark.parametrize(
    ("breakage", "restore", "code", "words"),
    [
        (CampaignMonitorSandbox.revoke_key, restore_key, 8, ("refused the credentials",)),
        (CampaignMonitorSandbox.delete_list, restore_list, 9, ("no longer exists", "list_id")),
    ],
    ids=["key-revoked", "list-deleted"],
)
def test_a_run_level_failure_mid_run_stops_cleanly_and_the_next_run_continues(
    tmp_path: Path,
    sandbox: WatchedSandbox,
    breakage: Callable[[CampaignMonitorSandbox], None],
    restore: Callable[[CampaignMonitorSandbox], None],
    code: int,
    words: tuple[str, ...],
) -> None:
    op = make_workspace(tmp_path, sandbox)
    # The third import and every later one fail; the two before it are answered first.
    sandbox.act_at, sandbox.drain, sandbox.action = 3, True, lambda: breakage(sandbox)

    result = op("exports", "run", "news", check=False)

    assert_one_line_error(result, code, *words)
    assert sandbox.api_key not in result.stdout + result.stderr
    sandbox.settle()
    landed = subscribers(sandbox)
    assert len(landed) == 2 * LIMITS.batch_size  # the two imports before the breakage, nothing after
    recorded = sync_state(op.home)
    assert recorded == {address: options_of(landed[address]) for address in landed}  # acknowledged = recorded
    [run] = json.loads(op("runs", "list", "--json").stdout)
    assert run["status"] == "failed" and run["counts"]["created"] == len(landed)

    restore(sandbox)
    sandbox.phase = 2
    finished = op.run_json("news")

    assert finished["status"] == "succeeded"
    assert_exact(sandbox, op.home)
    assert set(sandbox.sent[2]) == set(SELECTED) - set(recorded)  # nothing recorded is sent again
    assert finished["counts"]["created"] == len(SELECTED) - len(recorded)
