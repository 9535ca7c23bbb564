"""Issue 9, item 2: the Redis governor shared across processes, and the Celery executor.

A ``redis-server`` is started on a free loopback port for the session (with ``CI=true`` a missing
``redis-server`` fails these tests instead of skipping them). Workers are real ``segport worker``
processes; the platforms are Mailchimp and Campaign Monitor sandboxes, each counting the calls it had
in flight at once.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

import segport
from segport import Workspace
from segport.governor import key_for
from segport.sandboxing import Request, WatchedWrites
from segport.testing import PlatformMember
from segport.testing.operator import Operator
from segport_campaignmonitor.destination import LIMITS as CM_LIMITS
from segport_campaignmonitor.sandbox import CampaignMonitorSandbox
from segport_mailchimp.sandbox import MailchimpSandbox

LIMIT = 10  # Mailchimp's simultaneous connections per key, the sandbox's max_connections
BATCH_CREATE = re.compile(r"/3\.0/lists/[^/]+")
CM_IMPORT = re.compile(r"/api/v3\.3/subscribers/[^/]+/import\.json")


def wait_until(predicate: Callable[[], bool], timeout: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


# --- the Redis semaphore ---------------------------------------------------------------------------

HAMMER = textwrap.dedent(
    """
    import sys, threading, time, redis
    from segport.governor import RedisGovernor
    url, credential, limit, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    governor = RedisGovernor(url)
    gate = governor.slot(credential, limit)
    client = redis.Redis.from_url(url)
    seen = []
    def work():
        for _ in range(rounds):
            with gate:
                seen.append(client.incr("hammer:in-flight"))
                time.sleep(0.002)
                client.decr("hammer:in-flight")
    threads = [threading.Thread(target=work) for _ in range(6)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    print(max(seen))
    """
)

HOLDER = textwrap.dedent(
    """
    import sys, time
    from segport.governor import RedisGovernor
    url, credential, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
    gate = RedisGovernor(url).slot(credential, limit)
    for _ in range(limit):
        gate.__enter__()
    print("held", flush=True)
    time.sleep(600)
    """
)


def python(script: str, *args: str, ttl: float = 10) -> subprocess.Popen[str]:
    env = {**os.environ, "SEGPORT_GOVERNOR_TTL": str(ttl)}
    return subprocess.Popen([sys.executable, "-c", script, *args], env=env, stdout=subprocess.PIPE, text=True)


@pytest.mark.e2e
def test_three_processes_hammering_one_key_never_pass_its_limit(redis_url: str) -> None:
    import redis

    with redis.Redis.from_url(redis_url) as client:
        client.delete("hammer:in-flight")
    workers = [python(HAMMER, redis_url, "mailchimp:hammer", "3", "60") for _ in range(3)]
    peaks = [int(p.communicate(timeout=60)[0]) for p in workers]
    assert [p.returncode for p in workers] == [0, 0, 0]
    assert max(peaks) == 3  # 18 threads wanted in: the limit was reached, never passed
    with redis.Redis.from_url(redis_url) as client:
        assert client.zcard(key_for("mailchimp:hammer")) == 0  # every lease released


@pytest.mark.e2e
def test_a_killed_holders_slots_come_back_after_the_ttl_and_a_live_one_keeps_them(redis_url: str) -> None:
    import redis

    credential = "mailchimp:killed-holder"
    holder = python(HOLDER, redis_url, credential, "2", ttl=1.0)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        client = redis.Redis.from_url(redis_url)
        time.sleep(2.5)  # longer than the TTL: the holder's renewals keep its leases
        assert client.zcard(key_for(credential)) == 2
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        assert holder.stdout is not None
        holder.stdout.close()
    from segport.governor import RedisGovernor

    gate = RedisGovernor(redis_url, ttl=1.0).slot(credential, 2)
    started = time.monotonic()
    with gate:  # waits until the dead holder's leases expire
        waited = time.monotonic() - started
    assert 0.2 < waited < 3.0
    assert credential not in " ".join(k.decode() for k in client.keys("*"))  # keys hold a hash, not the text
    client.close()


def test_without_redis_the_governor_stays_in_process() -> None:
    from segport.governor import governor

    gate = governor("mailchimp:local-only", 2)
    assert isinstance(gate, threading.BoundedSemaphore) and governor("mailchimp:local-only", 5) is gate


# --- the executor and workers ------------------------------------------------------------------------


def email(i: int) -> str:
    return f"person{i}@shop.segport-test.net"


class Counting(WatchedWrites):
    """What a fleet's sandbox adds to its platform's: the connection type, the calls in flight its key
    allows, the export mapping; every address sent in a create (batch create, import) is in ``sent[1]``
    and the creates in ``writes`` (the kit's :class:`WatchedWrites`)."""

    kind: str  # the connection type
    limit: int  # calls in flight per key, across workers
    mapping: dict[str, str]  # destination field -> profile field, "First{i}" for person i
    subscribed: str  # the platform's word for an active person

    def expected(self, i: int, segment: str) -> PlatformMember:
        """Person ``i`` as an export of ``segment`` leaves them (what ``members()`` reads)."""
        return PlatformMember(email(i), {f: f"First{i}" for f in self.mapping}, frozenset({segment}), self.subscribed)


class CountingSandbox(Counting, MailchimpSandbox):
    """The Mailchimp sandbox counting every address sent in a batch create, and the creates answered."""

    kind, limit, mapping, subscribed = "mailchimp", LIMIT, {"FNAME": "first_name"}, "subscribed"

    def written(self, req: Request) -> list[str] | None:
        if req.method != "POST" or not BATCH_CREATE.fullmatch(req.path):
            return None
        return [str(m["email_address"]) for m in req.json().get("members") or []]


class CountingCampaignMonitor(Counting, CampaignMonitorSandbox):
    """The Campaign Monitor sandbox counting every address sent in an import, and the imports answered.
    Its key's limit is the destination's own (no documented one): ``LIMITS.max_concurrency``."""

    kind, limit, mapping, subscribed = "campaignmonitor", CM_LIMITS.max_concurrency, {"Name": "first_name"}, "Active"

    def written(self, req: Request) -> list[str] | None:
        if req.method != "POST" or not CM_IMPORT.fullmatch(req.path):
            return None
        return [str(s["EmailAddress"]) for s in req.json().get("Subscribers") or []]


FleetSandbox = CountingSandbox | CountingCampaignMonitor


class Fleet:
    """A workspace with exports on one or more sandboxes (one key each, Mailchimp or Campaign Monitor), and
    ``segport worker`` processes.

    Export ``e{k}`` sends segment ``G{k}`` (profiles ``i % exports == k``) to sandbox ``k % len(sandboxes)``.
    """

    def __init__(self, tmp_path: Path, redis_url: str, sandboxes: list[FleetSandbox], exports: int,
                 per_export: int, visibility: float = 60, database_url: str | None = None) -> None:
        self.sandboxes, self.exports, self.count = sandboxes, exports, exports * per_export
        self.home = tmp_path / "ws"
        self.logs = tmp_path / "logs"
        self.logs.mkdir()
        profiles = tmp_path / "profiles.csv"
        rows = ["id,email,first_name,group"]
        rows += [f"p{i:05d},{email(i)},First{i},g{i % exports}" for i in range(self.count)]
        profiles.write_text("\n".join(rows) + "\n", encoding="utf-8")
        with Workspace.create(self.home, "ada", database_url=database_url) as ws:
            ws.load_profiles(profiles)
            for n, sandbox in enumerate(sandboxes):
                ws.add_connection(f"key{n}", sandbox.kind, sandbox.demo_connection(), agree_privacy=True)
            for k in range(exports):
                sandbox = sandboxes[k % len(sandboxes)]
                ws.define_segment(f"G{k}", f"group = 'g{k}'")
                ws.add_export(f"e{k}", connection=f"key{k % len(sandboxes)}", segments=[f"G{k}"],
                              email_field="email", mapping=sandbox.mapping, options=sandbox.demo_export_options())
        self.op = Operator(self.home)
        self.op.env.update(SEGPORT_BROKER_URL=redis_url, SEGPORT_VISIBILITY_TIMEOUT=str(visibility),
                           SEGPORT_GOVERNOR_TTL="3")
        if database_url:  # the workers and the CLI use the test's PostgreSQL database
            self.op.env["SEGPORT_DATABASE_URL"] = database_url
        self.workers: list[subprocess.Popen[bytes]] = []

    def start_worker(self, concurrency: int = 2) -> subprocess.Popen[bytes]:
        log = (self.logs / f"worker{len(self.workers)}.log").open("wb")
        worker = subprocess.Popen(
            [sys.executable, "-m", "segport", "worker", "--concurrency", str(concurrency)],
            env=self.op.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        self.workers.append(worker)
        return worker

    def worker_log(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.logs.glob("*.log")))

    def stop(self) -> None:
        for worker in self.workers:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGTERM)
        for worker in self.workers:
            try:
                worker.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait(10)

    def runs(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = json.loads(self.op("runs", "list", "--json", "--limit", "500").stdout)
        return found

    def assert_exact(self, *, resent_at_most: int = 1) -> None:
        """Each audience/list holds exactly its exports' people, each with its name, its export's segment
        (tag or membership option) and subscribed; an address is sent at most ``resent_at_most`` times."""
        for n, sandbox in enumerate(self.sandboxes):
            mine = [i for i in range(self.count) if (i % self.exports) % len(self.sandboxes) == n]
            landed = {m.email: m for m in sandbox.members()}
            assert landed == {email(i): sandbox.expected(i, f"G{i % self.exports}") for i in mine}
            assert set(sandbox.sent[1]) == set(landed) and max(sandbox.sent[1].values()) <= resent_at_most


# The fleet's two keys: two Mailchimp accounts, or one Mailchimp and one Campaign Monitor account.
TWO_MAILCHIMP = (CountingSandbox, CountingSandbox)
MIXED = (CountingSandbox, CountingCampaignMonitor)


@pytest.fixture
def sandboxes(request: pytest.FixtureRequest) -> Iterator[list[FleetSandbox]]:
    """Two sandboxes at 40 ms a call: ``TWO_MAILCHIMP``, or the kinds of an indirect parameter (``MIXED``)."""
    kinds: tuple[type[FleetSandbox], ...] = getattr(request, "param", TWO_MAILCHIMP)
    with ExitStack() as stack:
        found = [stack.enter_context(kind(seed=41 + n)) for n, kind in enumerate(kinds)]
        for sandbox in found:
            sandbox.set_faults(latency_ms=40)
        yield found


@pytest.mark.e2e
def test_refresh_queued_on_two_workers_lands_exactly_within_each_keys_limit(
    tmp_path: Path, redis_url: str, sandboxes: list[FleetSandbox]
) -> None:
    fleet = Fleet(tmp_path, redis_url, sandboxes, exports=4, per_export=3500)
    try:
        for _ in range(2):
            fleet.start_worker(concurrency=2)
        queued = json.loads(fleet.op("refresh", "--json").stdout)
        assert [(q["export"], q["status"]) for q in queued] == [(f"e{k}", "queued") for k in range(4)]
        wait_until(lambda: sum(r["status"] != "running" for r in fleet.runs()) == 4, timeout=60,
                   what="four runs on the workers")
        waited = json.loads(fleet.op("exports", "run", "e0", "--wait", "--json").stdout)  # a second, delta run
        assert waited["status"] == "succeeded" and waited["counts"]["created"] == 0
    finally:
        fleet.stop()
    runs = [r for r in fleet.runs() if r["id"] != waited["id"]]
    assert sorted((r["export"], r["status"], r["trigger"]) for r in runs) == [
        (f"e{k}", "succeeded", "refresh") for k in range(4)
    ]
    assert all(r["counts"]["created"] == 3500 for r in runs)
    for sandbox in sandboxes:
        assert 1 < sandbox.max_in_flight <= sandbox.limit  # shared by two workers' runs of the key, never passed
    fleet.assert_exact()
    log = fleet.worker_log()
    for sandbox in sandboxes:
        assert sandbox.api_key not in log


@pytest.mark.e2e
def test_a_worker_killed_mid_run_is_replaced_and_the_run_resumes(tmp_path: Path, redis_url: str) -> None:
    with CountingSandbox(seed=43) as sandbox:
        sandbox.set_faults(latency_ms=150)
        fleet = Fleet(tmp_path, redis_url, [sandbox], exports=1, per_export=10_000, visibility=6)
        try:
            first = fleet.start_worker(concurrency=1)
            waiting = subprocess.Popen(
                [sys.executable, "-m", "segport", "exports", "run", "e0", "--wait", "--json"],
                env=fleet.op.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )
            wait_until(lambda: sandbox.writes >= 4, what="the first worker mid-run")
            os.killpg(first.pid, signal.SIGKILL)  # the worker and its pool: nothing acknowledges the message
            first.wait(10)
            killed_at = sandbox.writes
            # The resumed run outlives the 6 s visibility timeout: the broker hands its message out again
            # while it runs, and that copy must not start a third run once the run is done.
            sandbox.set_faults(latency_ms=2500)
            fleet.start_worker(concurrency=1)
            out, err = waiting.communicate(timeout=90)
        finally:
            fleet.stop()
        assert waiting.returncode == 0, err
        record = json.loads(out)
        assert record["status"] == "succeeded"
        runs = sorted(fleet.runs(), key=lambda r: r["id"])
        assert [r["status"] for r in runs] == ["interrupted", "succeeded"] and runs[1]["id"] == record["id"]
        assert runs[1]["counts"]["created"] < 10_000  # resumed: what the killed run committed was not re-sent
        assert killed_at < sandbox.writes
        fleet.assert_exact(resent_at_most=2)  # at most the batches in flight at the kill were sent twice


@pytest.mark.e2e
def test_broker_unreachable_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    with Workspace.create(tmp_path / "ws", "ada"):
        pass
    op = Operator(tmp_path / "ws")
    op.env["SEGPORT_BROKER_URL"] = "redis://:hunter2secret@127.0.0.1:1/0"
    for args in (("refresh",), ("worker",)):
        result = op(*args, check=False, timeout=60)
        assert result.returncode == segport.ExitStatus.EXECUTOR_ERROR, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: cannot reach the broker at SEGPORT_BROKER_URL=")
        assert "hunter2secret" not in result.stderr + result.stdout


@pytest.mark.e2e
def test_a_run_queued_while_its_export_runs_joins_that_run(tmp_path: Path, redis_url: str) -> None:
    """Two deliveries of one export at once (two queued runs, or a redelivery): the store's lock refuses
    the second, whose task waits for the first run and returns its record; nothing overlaps."""
    with CountingSandbox(seed=44) as sandbox:
        sandbox.set_faults(latency_ms=300)
        fleet = Fleet(tmp_path, redis_url, [sandbox], exports=1, per_export=3000)
        try:
            fleet.start_worker(concurrency=1)
            fleet.start_worker(concurrency=1)
            clients = [
                subprocess.Popen([sys.executable, "-m", "segport", "exports", "run", "e0", "--wait", "--json"],
                                 env=fleet.op.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for _ in range(2)
            ]
            results = [(c.communicate(timeout=60), c.returncode) for c in clients]
        finally:
            fleet.stop()
        assert [code for _, code in results] == [0, 0], [err for (_, err), _ in results]
        records = [json.loads(out) for (out, _), _ in results]
        assert records[0]["id"] == records[1]["id"] and records[0]["status"] == "succeeded"
        assert [(r["id"], r["status"]) for r in fleet.runs()] == [(records[0]["id"], "succeeded")]
        fleet.assert_exact()


@pytest.mark.e2e
@pytest.mark.parametrize("sandboxes", [TWO_MAILCHIMP, MIXED], indirect=True, ids=["two-mailchimp", "mixed"])
def test_twenty_exports_on_three_workers_sharing_two_keys(
    tmp_path: Path, redis_url: str, sandboxes: list[FleetSandbox], database_url: str | None
) -> None:
    """Issue 9's fleet: a refresh of 20 exports on 3 workers, 2 credentials (one per sandbox: two Mailchimp
    keys, or one Mailchimp and one Campaign Monitor key, 10 exports each), on each store."""
    fleet = Fleet(tmp_path, redis_url, sandboxes, exports=20, per_export=1200, database_url=database_url)
    try:
        for _ in range(3):
            fleet.start_worker(concurrency=2)
        queued = json.loads(fleet.op("refresh", "--json").stdout)
        assert sorted(q["export"] for q in queued if q["status"] == "queued") == sorted(f"e{k}" for k in range(20))
        wait_until(lambda: sum(r["status"] != "running" for r in fleet.runs()) == 20, timeout=240,
                   what="twenty runs on three workers")
    finally:
        fleet.stop()
    runs = fleet.runs()
    assert sorted((r["export"], r["status"]) for r in runs) == sorted((f"e{k}", "succeeded") for k in range(20))
    assert all(r["counts"]["created"] == 1200 for r in runs)  # one run per export: nothing overlapped
    for sandbox in sandboxes:
        assert 1 < sandbox.max_in_flight <= sandbox.limit  # each key shared by several workers' runs, never past it
    fleet.assert_exact()
    busy = [log for log in sorted(fleet.logs.glob("*.log")) if "succeeded in" in log.read_text(errors="replace")]
    assert len(busy) >= 2, "the runs were not spread over the workers"
