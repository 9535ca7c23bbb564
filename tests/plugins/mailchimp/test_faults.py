"""Mailchimp under injected faults: the real CLI against the sandbox, the provider's final state checked exactly.

The sandbox draws faults per call (seeded): 429 with and without Retry-After, the bodiless 403 throttle
(docs/providers/mailchimp.md#connection-limit), 500, 503, connection resets before and after the platform
applied the call, timeouts past the client's read timeout, slow calls, and new signups refused in the batch
answer's ``errors[]`` ("signed up to a lot of lists very recently", ERROR_GENERIC,
docs/providers/mailchimp.md#error-texts) for a seeded set of addresses. Expected state is computed from the
data alone; what landed is read from the sandbox, never from segport's own records.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from segport.testing.operator import Operator
from segport.testing.sandbox import FaultEvent
from segport.workspace import Workspace
from segport_mailchimp.sandbox import MailchimpSandbox

pytestmark = pytest.mark.e2e

N = 50_000
# A client read timeout well above any honest answer on a loaded 2-core machine (a spurious timeout would be a
# retry the fault log cannot explain), and the hold of a "timeout" fault past it.
TIMEOUT_S, HOLD_S = 4.0, 5.0
# 5 % of the calls fail, every kind alike; 0.5 % of the addresses are refused inside the batch answer.
MIX: dict[str, Any] = {"fail_rate": 0.05, "hold_s": HOLD_S, "slow_ms": 200, "member_fail_rate": 0.005}
SMALL = 600  # two batches: 500 + 100
CALL_KINDS = ["429", "429-retry-after", "403", "500", "503", "reset", "reset-applied", "timeout", "slow"]
# Every call, pre-flight included, but not the operations a /batches job runs ("op PUT ..."): they are no calls
# (test_failed_operations_of_a_batch_job_are_retried covers them).
CALLS = r"^(?!op )"
CREATE_CALL = r"^POST /3\.0/lists/\w+$"
PREFLIGHT_CALLS = r"^GET /3\.0/lists/\w+(/merge-fields|/segments)?$|^POST /3\.0/lists/\w+/(merge-fields|segments)$"
PREFLIGHT_CREATES = r"^POST /3\.0/lists/\w+/(merge-fields|segments)$"
REFUSED = "has signed up to a lot of lists very recently"
CUT_BUG = "dispatcher.py retries requests.ConnectionError but not ChunkedEncodingError (an answer cut mid-body)"


def email(i: int) -> str:
    return f"person{i}@shop.segport-test.net"


def key(i: int) -> str:
    return f"p{i:05d}"


def tags_of(i: int) -> set[str]:
    """VIP: the filter ``tier = 'gold'``; Newsletter: the loaded keys. Everyone is in one at least."""
    return ({"VIP"} if i % 4 == 0 else set()) | ({"Newsletter"} if i % 4 or i % 8 == 0 else set())


def load_profiles(op: Operator, tmp_path: Path, count: int, first: str = "First") -> None:
    rows = ["id,email,first_name,last_name,tier"]
    rows += [f"{key(i)},{email(i)},{first}{i},Last{i},{'gold' if i % 4 == 0 else 'basic'}" for i in range(count)]
    (tmp_path / "profiles.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    op("profiles", "load", str(tmp_path / "profiles.csv"))


def workspace(tmp_path: Path, sandbox: MailchimpSandbox, count: int) -> Operator:
    """A workspace with ``count`` profiles, both segments and a connection with a read timeout of TIMEOUT_S."""
    op = Operator(tmp_path / "ws")
    op("init", "--admin", "ada")
    load_profiles(op, tmp_path, count)
    (tmp_path / "news.txt").write_text("".join(f"{key(i)}\n" for i in range(count) if "Newsletter" in tags_of(i)))
    op("segments", "define", "VIP", "--where", "tier = 'gold'")
    op("segments", "load", "Newsletter", str(tmp_path / "news.txt"))
    config = json.dumps({**sandbox.demo_connection(), "timeout_s": TIMEOUT_S})
    op("connections", "add", "mc", "--type", "mailchimp", "--config", config, "--agree-privacy")
    return op


def add_export(op: Operator, sandbox: MailchimpSandbox, name: str) -> None:
    op(
        *("exports", "add", name, "--connection", "mc", "--email", "email", "--segment", "VIP"),
        *("--segment", "Newsletter", "--map", "FNAME=first_name", "--map", "LNAME=last_name"),
        *("--option", f"audience_id={sandbox.audience_id}"),
    )


def assert_landed(sandbox: MailchimpSandbox, expected: set[int], first: str = "First") -> None:
    """The audience holds exactly ``expected``: subscribed, both merge fields, exactly their tags."""
    assert sandbox.wait_idle(30), "the sandbox is still working (held calls or batch jobs)"
    audience = sandbox.state()["lists"][sandbox.audience_id]
    members: dict[str, dict[str, Any]] = audience["members"]
    assert set(members) == {email(i) for i in expected}, "members differ from the expected set"
    wrong = [
        i
        for i in expected
        if (m := members[email(i)])["status"] != "subscribed"
        or m["merge_fields"] != {"FNAME": f"{first}{i}", "LNAME": f"Last{i}"}
        or set(m["tags"]) != tags_of(i)
        or len(m["tags"]) != len(tags_of(i))
    ]
    assert not wrong, f"{len(wrong)} members with wrong status, fields or tags, e.g. {members[email(wrong[0])]}"
    sizes = {s["name"]: s["member_count"] for s in audience["segments"]}
    assert sizes == {t: sum(t in tags_of(i) for i in expected) for t in ("VIP", "Newsletter")}


def outcomes(op: Operator, run_id: int) -> list[tuple[str, str, str, str | None]]:
    """The run's outcome rows (key, email, status, reason), through the embedding API."""
    with Workspace.open(op.home, user="ada") as ws:
        return ws.store.outcomes(run_id)


def failing_faults(log: list[FaultEvent]) -> list[FaultEvent]:
    """Faults that can fail an attempt (of a batch or of the pre-flight): all but slow calls, refused members
    and the polls of a batch job (the writer polls on regardless). Each failed attempt costs one retry."""
    polls = [e for e in log if e.method == "GET" and e.path.startswith("/3.0/batches/")]
    return [e for e in log if e.kind not in ("slow", "member") and e not in polls]


def create_faults(log: list[FaultEvent], audience: str) -> list[FaultEvent]:
    """Faults on batch creates: each ends its attempt, so each is one retry."""
    return [e for e in failing_faults(log) if not e.operation and e.path == f"/3.0/lists/{audience}"]


def test_50k_profiles_land_exactly_under_5_percent_mixed_faults(tmp_path: Path) -> None:
    with MailchimpSandbox(seed=11) as sandbox:
        op = workspace(tmp_path, sandbox, N)
        add_export(op, sandbox, "news")
        sandbox.set_faults(**MIX, kinds=CALL_KINDS, fault_filter=CALLS)
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
        assert all(REFUSED in str(row[3]) for row in rows if row[2] == "rejected")
        assert {row[2] for row in rows} <= {"created", "updated", "rejected"}
        assert run["counts"]["rejected"] == len(refused) > 100 and run["counts"]["failed"] == 0

        kinds = Counter(e.kind for e in log)
        assert kinds["member"] >= len(refused) and len(set(kinds) - {"member"}) >= 3, kinds
        creates, failing = create_faults(log, sandbox.audience_id), failing_faults(log)
        assert 0 < len(creates) <= run["retries"] <= len(failing), (run["retries"], kinds)

        second = op.run_json("news")  # no faults: exactly the refused people are sent, and land
        assert second["counts"]["created"] == len(refused) and second["counts"]["unchanged"] == N - len(refused)
        assert [row[0] for row in outcomes(op, second["id"])] == sorted(key(i) for i in refused)
        assert_landed(sandbox, set(range(N)))

        seen = len(sandbox.requests_log)
        third = op.run_json("news")  # the sync state is exact: nothing left to send
        assert third["counts"]["unchanged"] == N and third["retries"] == 0
        assert {method for method, _ in sandbox.requests_log[seen:]} == {"GET"}  # pre-flight reads only


def test_each_fault_kind_on_a_batch_create_is_retried_once(tmp_path: Path) -> None:
    """One fault of each kind on the first batch create: one retry, and exactly the expected audience."""
    with MailchimpSandbox(seed=12) as sandbox:
        op = workspace(tmp_path, sandbox, SMALL)
        for kind in [k for k in CALL_KINDS if k != "slow"]:
            sandbox.reset()
            sandbox.set_faults(kinds=[kind], fail_next=1, fault_filter=CREATE_CALL, hold_s=HOLD_S, retry_after_s=2)
            add_export(op, sandbox, f"k{kind}")
            run = op.run_json(f"k{kind}")
            assert (run["status"], run["retries"], sandbox.fault_counts()) == ("succeeded", 1, {kind: 1}), kind
            assert_landed(sandbox, set(range(SMALL)))
            statuses = Counter(row[2] for row in outcomes(op, run["id"]))
            # Applied but unanswered: the retry finds the people there (ERROR_CONTACT_EXISTS) and updates them. A
            # held call applies late, after its retry (then nobody is updated) unless the retry is later still.
            updated = {"reset-applied": (100, 500), "timeout": (0, 100, 500)}.get(kind, (0,))
            assert statuses["updated"] in updated, (kind, statuses)
            assert statuses["created"] + statuses["updated"] == SMALL, (kind, statuses)
            if kind == "429-retry-after":
                assert run["duration_s"] >= 2.0  # Retry-After: 2 is a floor for the wait


def test_failed_operations_of_a_batch_job_are_retried(tmp_path: Path) -> None:
    """A delta of field changes goes as /batches jobs of PUTs; operations answered 429/500/403 are retried.

    See docs/providers/mailchimp.md#batch-operations-request.
    """
    with MailchimpSandbox(seed=15) as sandbox:
        op = workspace(tmp_path, sandbox, SMALL)
        add_export(op, sandbox, "news")
        assert op.run_json("news")["counts"]["created"] == SMALL
        load_profiles(op, tmp_path, SMALL, first="Renamed")
        sandbox.set_faults(kinds=["429", "500", "403"], fail_next=3, fault_filter="^op PUT ")
        run = op.run_json("news")
        assert run["status"] == "succeeded" and run["counts"]["updated"] == SMALL
        assert sum(e.operation for e in sandbox.fault_log) == 3 and 1 <= run["retries"] <= 2  # one per job hit
        assert_landed(sandbox, set(range(SMALL)), first="Renamed")


@pytest.mark.parametrize(
    ("calls", "kinds"),
    [(PREFLIGHT_CALLS, ["429", "503", "reset"]), (PREFLIGHT_CREATES, ["reset-applied"])],
    ids=["reads", "creates-applied-unanswered"],
)
def test_preflight_survives_transient_faults(tmp_path: Path, calls: str, kinds: list[str]) -> None:
    """Faults on the first pre-flight calls: retried (a create that landed unanswered is found, not redone)."""
    with MailchimpSandbox(seed=13) as sandbox:
        op = workspace(tmp_path, sandbox, SMALL)
        add_export(op, sandbox, "news")
        sandbox.set_faults(kinds=kinds, fail_next=len(kinds) + 1, fault_filter=calls)
        run = op.run_json("news")
        assert (run["status"], sum(sandbox.fault_counts().values())) == ("succeeded", len(kinds) + 1)
        assert run["retries"] >= 1
        assert_landed(sandbox, set(range(SMALL)))


def test_an_answer_cut_mid_body_is_retried(tmp_path: Path) -> None:
    with MailchimpSandbox(seed=14) as sandbox:
        op = workspace(tmp_path, sandbox, SMALL)
        add_export(op, sandbox, "news")
        sandbox.set_faults(kinds=["cut"], fail_next=1, fault_filter=CREATE_CALL)
        run = op.run_json("news", check=False)
        assert (run["status"], run["retries"]) == ("succeeded", 1)
        assert_landed(sandbox, set(range(SMALL)))
