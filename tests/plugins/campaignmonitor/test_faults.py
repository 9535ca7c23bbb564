"""Campaign Monitor under injected faults: the real CLI against the sandbox, the final list checked exactly.

The sandbox draws faults per call (seeded): 429 with and without Retry-After, 500, 503, connection resets
before and after the platform applied the import, timeouts past the client's read timeout and slow calls; and a seeded
set of addresses fails inside the import answer (HTTP 400, Code 210, ``FailureDetails`` code 204,
docs/providers/campaignmonitor.md#partial-import).
Expected state is computed from the data alone; what landed is read from the sandbox, never from segport.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from segport.testing.operator import Operator
from segport.testing.sandbox import FaultEvent
from segport.workspace import Workspace
from segport_campaignmonitor.sandbox import CampaignMonitorSandbox

pytestmark = pytest.mark.e2e

N = 50_000
# A client read timeout well above any honest answer on a loaded 2-core machine (a spurious timeout would be a
# retry the fault log cannot explain), and the hold of a "timeout" fault past it.
TIMEOUT_S, HOLD_S = 4.0, 5.0
# 5 % of the calls fail, every kind alike; 0.5 % of the addresses are refused inside the batch answer.
MIX: dict[str, Any] = {"fail_rate": 0.05, "hold_s": HOLD_S, "slow_ms": 200, "member_fail_rate": 0.005}
SMALL = 1500  # two imports: 1000 + 500
CALL_KINDS = ["429", "429-retry-after", "500", "503", "reset", "reset-applied", "timeout", "slow"]
# all write_batch sends (docs/providers/campaignmonitor.md#import-request)
IMPORT_CALL = r"^POST /api/v3\.3/subscribers/\w+/import\.json$"
PREFLIGHT_CALLS = r"^GET /api/v3\.3/lists/|^POST /api/v3\.3/(lists/\w+/customfields|segments/\w+)\.json$"
PREFLIGHT_CREATES = r"^POST /api/v3\.3/(lists/\w+/customfields|segments/\w+)\.json$"
REFUSED = "code 204: In Suppression List"
# Campaign Monitor documents no Retry-After (docs/providers/campaignmonitor.md#rate-limits), but the dispatcher promises
# to honour one when present.
RETRY_AFTER_GAP = "campaignmonitor/api.py error_for() builds the 429 error without retry_after"
CUT_BUG = "dispatcher.py retries requests.ConnectionError but not ChunkedEncodingError (an answer cut mid-body)"


def email(i: int) -> str:
    return f"person{i}@shop.segport-test.net"


def key(i: int) -> str:
    return f"p{i:05d}"


def segments_of(i: int) -> set[str]:
    """VIP: the filter ``tier = 'gold'``; Newsletter: the loaded keys. Everyone is in one at least."""
    return ({"VIP"} if i % 4 == 0 else set()) | ({"Newsletter"} if i % 4 or i % 8 == 0 else set())


def workspace(tmp_path: Path, sandbox: CampaignMonitorSandbox, count: int) -> Operator:
    """A workspace with ``count`` profiles, both segments and a connection with a read timeout of TIMEOUT_S."""
    op = Operator(tmp_path / "ws")
    op("init", "--admin", "ada")
    rows = ["id,email,first_name,last_name,tier"]
    rows += [f"{key(i)},{email(i)},First{i},Last{i},{'gold' if i % 4 == 0 else 'basic'}" for i in range(count)]
    (tmp_path / "profiles.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (tmp_path / "news.txt").write_text("".join(f"{key(i)}\n" for i in range(count) if "Newsletter" in segments_of(i)))
    op("profiles", "load", str(tmp_path / "profiles.csv"))
    op("segments", "define", "VIP", "--where", "tier = 'gold'")
    op("segments", "load", "Newsletter", str(tmp_path / "news.txt"))
    config = json.dumps({**sandbox.demo_connection(), "timeout_s": TIMEOUT_S})
    op("connections", "add", "cm", "--type", "campaignmonitor", "--config", config, "--agree-privacy")
    return op


def add_export(op: Operator, sandbox: CampaignMonitorSandbox, name: str) -> None:
    op(
        *("exports", "add", name, "--connection", "cm", "--email", "email", "--segment", "VIP"),
        *("--segment", "Newsletter", "--map", "Name=first_name+last_name", "--option", f"list_id={sandbox.list_id}"),
    )


def options_of(subscriber: dict[str, Any]) -> list[str]:
    value = subscriber["CustomFields"].get("Segments") or []
    return sorted(value if isinstance(value, list) else [value])


def assert_landed(sandbox: CampaignMonitorSandbox, expected: set[int]) -> None:
    """The list holds exactly ``expected``: active, named, exactly their segment options."""
    assert sandbox.wait_idle(30), "the sandbox is still working (held calls)"
    found: dict[str, dict[str, Any]] = sandbox.state()["lists"][sandbox.list_id]["subscribers"]
    assert set(found) == {email(i) for i in expected}, "subscribers differ from the expected set"
    wrong = [
        i
        for i in expected
        if (s := found[email(i)])["State"] != "Active"
        or s["Name"] != f"First{i} Last{i}"
        or options_of(s) != sorted(segments_of(i))
    ]
    assert not wrong, f"{len(wrong)} subscribers with wrong state, name or segments, e.g. {found[email(wrong[0])]}"


def outcomes(op: Operator, run_id: int) -> list[tuple[str, str, str, str | None]]:
    """The run's outcome rows (key, email, status, reason), through the embedding API."""
    with Workspace.open(op.home, user="ada") as ws:
        return ws.store.outcomes(run_id)


def failing(log: list[FaultEvent]) -> tuple[list[FaultEvent], list[FaultEvent]]:
    """Faults that fail a call: on imports (one per write_batch, so each is exactly one retry), and on pre-flight
    calls (each failed pre-flight attempt is one retry; its reads go out together, so one may hold several)."""
    calls = [e for e in log if e.kind not in ("slow", "member")]
    imports = [e for e in calls if re.search(IMPORT_CALL, f"{e.method} {e.path}")]
    return imports, [e for e in calls if e not in imports]


def test_50k_profiles_land_exactly_under_5_percent_mixed_faults(tmp_path: Path) -> None:
    with CampaignMonitorSandbox(seed=21) as sandbox:
        op = workspace(tmp_path, sandbox, N)
        add_export(op, sandbox, "news")
        sandbox.set_faults(**MIX, kinds=CALL_KINDS)  # every call
        refused = {i for i in range(N) if sandbox.member_fault(email(i))}
        run = op.run_json("news")
        assert sandbox.wait_idle(30)
        log = list(sandbox.fault_log)
        sandbox.set_faults(fail_rate=0.0, member_fail_rate=0.0)

        assert run["status"] == "succeeded", run
        assert_landed(sandbox, set(range(N)) - refused)
        rows = outcomes(op, run["id"])
        assert [row[0] for row in rows] == [key(i) for i in range(N)]  # one final outcome per record
        assert {row[0] for row in rows if row[2] == "rejected"} == {key(i) for i in refused}
        assert all(row[3] == REFUSED for row in rows if row[2] == "rejected")
        assert {row[2] for row in rows} == {"created", "rejected"}
        assert run["counts"]["rejected"] == len(refused) > 100 and run["counts"]["failed"] == 0

        kinds = Counter(e.kind for e in log)
        assert kinds["member"] >= len(refused) and len(set(kinds) - {"member"}) >= 3, kinds
        imports, preflight = failing(log)
        assert len(imports) + bool(preflight) <= run["retries"] <= len(imports) + len(preflight), kinds
        assert run["retries"] > 0

        second = op.run_json("news")  # no faults: exactly the refused people are sent, and land
        assert second["counts"]["created"] == len(refused) and second["counts"]["unchanged"] == N - len(refused)
        assert [row[0] for row in outcomes(op, second["id"])] == sorted(key(i) for i in refused)
        assert_landed(sandbox, set(range(N)))

        seen = len(sandbox.requests_log)
        third = op.run_json("news")  # the sync state is exact: nothing left to send
        assert third["counts"]["unchanged"] == N and third["retries"] == 0
        assert {method for method, _ in sandbox.requests_log[seen:]} == {"GET"}  # pre-flight reads only


def test_each_fault_kind_on_an_import_is_retried_once(tmp_path: Path) -> None:
    """One fault of each kind on the first import: one retry, and exactly the expected list."""
    with CampaignMonitorSandbox(seed=22) as sandbox:
        op = workspace(tmp_path, sandbox, SMALL)
        for kind in [k for k in CALL_KINDS if k != "slow"]:
            sandbox.reset()
            sandbox.set_faults(kinds=[kind], fail_next=1, fault_filter=IMPORT_CALL, hold_s=HOLD_S)
            add_export(op, sandbox, f"k{kind}")
            run = op.run_json(f"k{kind}")
            assert (run["status"], run["retries"], sandbox.fault_counts()) == ("succeeded", 1, {kind: 1}), kind
            assert_landed(sandbox, set(range(SMALL)))
            assert Counter(row[2] for row in outcomes(op, run["id"])) == {"created": SMALL}, kind


def test_a_retry_after_is_honoured(tmp_path: Path) -> None:
    with CampaignMonitorSandbox(seed=25) as sandbox:
        op = workspace(tmp_path, sandbox, SMALL)
        add_export(op, sandbox, "news")
        sandbox.set_faults(kinds=["429-retry-after"], fail_next=1, fault_filter=IMPORT_CALL, retry_after_s=3)
        run = op.run_json("news")
        assert (run["status"], run["retries"]) == ("succeeded", 1)
        assert run["duration_s"] >= 3.0  # Retry-After: 3 is a floor for the wait


@pytest.mark.parametrize(
    ("calls", "kinds"),
    [(PREFLIGHT_CALLS, ["429", "503", "reset"]), (PREFLIGHT_CREATES, ["reset-applied"])],
    ids=["reads", "creates-applied-unanswered"],
)
def test_preflight_survives_transient_faults(tmp_path: Path, calls: str, kinds: list[str]) -> None:
    """Faults on the first pre-flight calls: retried (a create that landed unanswered is found, not redone)."""
    with CampaignMonitorSandbox(seed=23) as sandbox:
        op = workspace(tmp_path, sandbox, SMALL)
        add_export(op, sandbox, "news")
        sandbox.set_faults(kinds=kinds, fail_next=len(kinds) + 1, fault_filter=calls)
        run = op.run_json("news")
        assert (run["status"], sum(sandbox.fault_counts().values())) == ("succeeded", len(kinds) + 1)
        assert run["retries"] >= 1
        assert_landed(sandbox, set(range(SMALL)))


def test_an_answer_cut_mid_body_is_retried(tmp_path: Path) -> None:
    with CampaignMonitorSandbox(seed=24) as sandbox:
        op = workspace(tmp_path, sandbox, SMALL)
        add_export(op, sandbox, "news")
        sandbox.set_faults(kinds=["cut"], fail_next=1, fault_filter=IMPORT_CALL)
        run = op.run_json("news", check=False)
        assert (run["status"], run["retries"]) == ("succeeded", 1)
        assert_landed(sandbox, set(range(SMALL)))
