"""Concurrency (issue 7, item 8): one export never runs twice at once, and runs sharing a credential
share its connection limit.

The CLI runs in subprocesses against a Mailchimp sandbox that holds chosen batch creates
(``POST /lists/{id}``) until the test releases them, so every overlap below is forced, not hoped for.
The sandbox counts every address it is sent and the most API calls it had in flight at once
(``max_in_flight``, refused ones included); Mailchimp's limit is 10 simultaneous connections per key.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

import segport
from segport import RunStatus, Workspace
from segport.models import ScheduledRun
from segport.sandboxing import Request
from segport.scheduling import Scheduler
from segport.testing.fakes import MemoryPlatform
from segport.testing.operator import Operator
from segport_mailchimp.destination import LIMITS
from segport_mailchimp.sandbox import MailchimpSandbox

BATCH_CREATE = re.compile(r"/3\.0/lists/[^/]+")
# Mailchimp's simultaneous connections per key (docs/providers/mailchimp.md#connection-limit); the sandbox's default
# max_connections.
LIMIT = 10


class HoldingSandbox(MailchimpSandbox):
    """The Mailchimp sandbox, holding the batch creates ``hold(tags)`` picks until :attr:`release` is set.

    ``tags`` are the tag names the call's members carry (one export's segment, below). Held calls count
    in flight. ``created`` counts every address sent in a batch create; ``seen`` the calls per tag.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hold: Callable[[set[str]], bool] = lambda tags: False
        self.release = threading.Event()
        self.held = 0
        self.created: Counter[str] = Counter()
        self.seen: Counter[str] = Counter()
        self.watch = threading.Lock()

    def authenticate(self, req: Request) -> None:
        if req.method == "POST" and BATCH_CREATE.fullmatch(req.path):
            members = req.json().get("members") or []
            tags = {str(tag) for m in members for tag in m.get("tags") or []}
            with self.watch:
                self.created.update(str(m["email_address"]).lower() for m in members)
                self.seen.update(tags)
            if self.hold(tags):
                with self.watch:
                    self.held += 1
                self.release.wait(60)
        super().authenticate(req)


def wait_until(predicate: Callable[[], bool], timeout: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def email(i: int) -> str:
    return f"person{i}@shop.segport-test.net"


class Setup:
    """``exports`` exports on one Mailchimp connection: export ``e{k}`` sends segment ``G{k}``, the profiles
    ``i % exports == k`` (so exports share the key and the audience, never a member)."""

    def __init__(self, tmp_path: Path, sandbox: HoldingSandbox, exports: int, per_export: int) -> None:
        self.sandbox, self.exports, self.count = sandbox, exports, exports * per_export
        self.home = tmp_path / "ws"
        profiles = tmp_path / "profiles.csv"
        rows = ["id,email,first_name,group"]
        rows += [f"p{i:05d},{email(i)},First{i},g{i % exports}" for i in range(self.count)]
        profiles.write_text("\n".join(rows) + "\n", encoding="utf-8")
        with Workspace.create(self.home, "ada") as ws:
            ws.load_profiles(profiles)
            ws.add_connection("mc", "mailchimp", sandbox.demo_connection(), agree_privacy=True)
            for k in range(exports):
                ws.define_segment(f"G{k}", f"group = 'g{k}'")
                ws.add_export(
                    f"e{k}",
                    connection="mc",
                    segments=[f"G{k}"],
                    email_field="email",
                    mapping={"FNAME": "first_name"},
                    options=sandbox.demo_export_options(),
                )
        self.op = Operator(self.home)

    def assert_exact(self) -> None:
        """The audience holds exactly what the exports deliver, each address sent once."""
        landed = self.sandbox.state()["lists"][self.sandbox.audience_id]["members"]
        assert set(landed) == {email(i) for i in range(self.count)}
        for i in range(self.count):
            member = landed[email(i)]
            assert member["status"] == "subscribed", member
            assert member["tags"] == [f"G{i % self.exports}"] and member["merge_fields"] == {"FNAME": f"First{i}"}
        created = self.sandbox.created
        assert set(created) == set(landed) and max(created.values()) == 1

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "segport", *args],
            env=self.op.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def runs(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = json.loads(self.op("runs", "list", "--json").stdout)
        return found


def assert_one_line_error(stderr: str, *words: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture
def sandbox() -> Iterator[HoldingSandbox]:
    with HoldingSandbox(seed=31) as server:
        yield server


# --- one export, two runs ----------------------------------------------------------------------


@pytest.mark.e2e
def test_two_runs_of_one_export_started_together_one_is_refused(tmp_path: Path, sandbox: HoldingSandbox) -> None:
    setup = Setup(tmp_path, sandbox, exports=1, per_export=2000)
    sandbox.hold = lambda tags: True  # the winner stays mid-run until the loser has given up
    processes = [setup.popen("exports", "run", "e0", "--json") for _ in range(2)]
    try:
        wait_until(lambda: any(p.poll() is not None for p in processes), what="one run to be refused")
        [refused] = [p for p in processes if p.poll() is not None]
        [winner] = [p for p in processes if p is not refused]
        out, err = refused.communicate(timeout=30)
        assert refused.returncode == segport.ExitStatus.ALREADY_RUNNING, err
        assert_one_line_error(err, "export 'e0' is already running", "wait for it to finish")
        assert json.loads(out)["error"]["status"] == "ALREADY_RUNNING"  # --json: one error object, no run record
        assert winner.poll() is None  # still mid-run: the refusal was not a run that finished first
    finally:
        sandbox.release.set()
    out, err = winner.communicate(timeout=60)
    assert winner.returncode == 0, err
    run = json.loads(out)
    assert run["status"] == "succeeded" and run["counts"]["created"] == 2000
    assert [(r["id"], r["status"]) for r in setup.runs()] == [(run["id"], "succeeded")]  # the refusal left no run
    setup.assert_exact()


@pytest.mark.e2e
def test_refresh_while_the_scheduler_runs_an_export_does_not_overlap_it(
    tmp_path: Path, sandbox: HoldingSandbox
) -> None:
    setup = Setup(tmp_path, sandbox, exports=2, per_export=1000)
    setup.op("exports", "edit", "e0", "--schedule", "* * * * *")
    sandbox.hold = lambda tags: "G0" in tags  # the scheduled run of e0 stays mid-run during the refresh
    ws = Workspace.open(setup.home, user="ada")
    fired: list[ScheduledRun] = []
    done, stop = threading.Event(), threading.Event()
    ticks = iter([datetime(2026, 11, 25, 3, 0, 30, tzinfo=timezone.utc)])  # then 61 s later, for ever

    def fire(job: str) -> None:
        fired.extend(ws.fire(job))
        done.set()

    def clock() -> datetime:
        return next(ticks, datetime(2026, 11, 25, 3, 1, 31, tzinfo=timezone.utc))

    errors: list[BaseException] = []
    scheduler = Scheduler(ws.schedules, fire, lambda job, exc: errors.append(exc), clock=clock, stop=stop)
    thread = threading.Thread(target=scheduler.run, kwargs={"tick": 0.02})
    thread.start()
    try:
        wait_until(lambda: sandbox.held > 0, what="the scheduled run to be mid-run")
        refresh = setup.op("refresh", "--json", check=False)
    finally:
        sandbox.release.set()
        done.wait(60)
        stop.set()
        thread.join(60)
        ws.close()

    assert refresh.returncode == segport.ExitStatus.RUN_FAILED, refresh.stderr
    assert_one_line_error(refresh.stderr, "1 of 2 exports did not succeed: e0")
    document = json.loads(refresh.stdout)  # --json: one error object with every export's result beside it
    assert document["error"]["code"] == segport.ExitStatus.RUN_FAILED
    results = {r["export"]: r for r in document["results"]}
    assert results["e1"]["status"] == "succeeded" and results["e1"]["counts"]["created"] == 1000
    assert results["e0"]["status"] == "failed" and "export 'e0' is already running" in results["e0"]["error"]
    assert errors == [] and [(r.export, r.status) for r in fired] == [("e0", "succeeded")]
    runs = sorted((r["export"], r["trigger"], r["status"]) for r in setup.runs())
    assert runs == [("e0", "schedule", "succeeded"), ("e1", "refresh", "succeeded")]  # one run of e0, not two
    setup.assert_exact()


# --- exports sharing one key ---------------------------------------------------------------------


@pytest.mark.e2e
def test_refresh_of_exports_sharing_a_key_stays_within_its_connection_limit(
    tmp_path: Path, sandbox: HoldingSandbox
) -> None:
    setup = Setup(tmp_path, sandbox, exports=4, per_export=2500)
    sandbox.set_faults(latency_ms=20)
    results = json.loads(setup.op("refresh", "--json").stdout)
    assert [(r["export"], r["status"], r["counts"]["created"]) for r in results] == [
        (f"e{k}", "succeeded", 2500) for k in range(4)
    ]
    assert 1 < sandbox.max_in_flight <= LIMIT
    setup.assert_exact()


def test_runs_sharing_a_key_in_one_process_share_its_limit(tmp_path: Path, sandbox: HoldingSandbox) -> None:
    """The embedding API: two runs at once in one process (six batch calls each) never pass 10 calls."""
    setup = Setup(tmp_path, sandbox, exports=2, per_export=6 * LIMITS.batch_size)
    # Hold batch creates until ten are held: one run's six and four of the other's if the governor is
    # shared (its pre-flight reads came before its batch calls, beside the six held ones), twelve (two of
    # them refused) if each run had its own.
    sandbox.hold = lambda tags: sandbox.held < LIMIT
    results: dict[str, segport.Run | BaseException] = {}

    def run(name: str) -> None:
        with Workspace.open(setup.home, user="ada") as ws:
            try:
                results[name] = ws.run_export(name)
            except BaseException as exc:  # reported below
                results[name] = exc

    threads = [threading.Thread(target=run, args=(name,)) for name in ("e0", "e1")]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: sandbox.held == LIMIT or not any(t.is_alive() for t in threads), what="ten held calls")
    finally:
        sandbox.release.set()
        for thread in threads:
            thread.join(60)
    for name in ("e0", "e1"):
        run_record = results[name]
        assert isinstance(run_record, segport.Run), run_record
        assert run_record.status is RunStatus.SUCCEEDED and run_record.counts["created"] == 3000
    assert sandbox.max_in_flight == LIMIT  # the governor filled the key's limit and never passed it
    setup.assert_exact()


def run_two_processes(tmp: Path, env: dict[str, str]) -> Iterator[tuple[Setup, list[tuple[int, str, str]]]]:
    """Two ``exports run`` processes of two exports sharing a key, six batch calls each, forced to overlap:
    batch creates are held until the sandbox sees more calls at once than the key's limit (or 3 s pass
    after the second run sent its first). Yields the setup and each process's (code, stdout, stderr)."""
    with HoldingSandbox(seed=99) as sandbox:
        setup = Setup(tmp, sandbox, exports=2, per_export=6 * LIMITS.batch_size)
        setup.op.env.update(env)
        sandbox.hold = lambda tags: sandbox.max_in_flight <= LIMIT
        first = setup.popen("exports", "run", "e0", "--json")
        try:
            wait_until(lambda: sandbox.held == 6 or first.poll() is not None, what="the first run's six calls")
            second = setup.popen("exports", "run", "e1", "--json")
            wait_until(lambda: "G1" in sandbox.seen or second.poll() is not None, what="the second run's calls")
            deadline = time.monotonic() + 3
            while sandbox.max_in_flight <= LIMIT and time.monotonic() < deadline:
                time.sleep(0.01)
        finally:
            sandbox.release.set()
        outcomes = [(p.wait(timeout=120), *p.communicate(timeout=10)) for p in (first, second)]
        yield setup, outcomes


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Setup, list[tuple[int, str, str]]]]:
    """The default governor: a semaphore per process."""
    yield from run_two_processes(tmp_path_factory.mktemp("two"), {})


@pytest.fixture(scope="module")
def two_processes_sharing_redis(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str
) -> Iterator[tuple[Setup, list[tuple[int, str, str]]]]:
    """The governor shared through Redis (``SEGPORT_REDIS_URL``, issue 9): one semaphore for both processes."""
    yield from run_two_processes(tmp_path_factory.mktemp("shared"), {"SEGPORT_REDIS_URL": redis_url})


@pytest.mark.e2e
def test_runs_in_separate_processes_retry_the_platforms_429_and_land_exactly(
    two_processes: tuple[Setup, list[tuple[int, str, str]]],
) -> None:
    setup, outcomes = two_processes
    for code, out, err in outcomes:
        assert code == 0, err
        run = json.loads(out)
        assert run["status"] == "succeeded" and run["counts"]["created"] == 3000
    assert sum(json.loads(out)["retries"] for _, out, _ in outcomes) >= 1  # the refused calls were retried
    setup.assert_exact()


@pytest.mark.e2e
@pytest.mark.xfail(
    strict=True,
    reason="by default (no SEGPORT_REDIS_URL) the per-credential governor (core/governor.py) is a threading "
    "semaphore: two processes sharing a key each allow max_concurrency calls, so the platform sees up to twice "
    "its limit (its 429s are retried, see above); the next test shares the governor through Redis",
)
def test_runs_in_separate_processes_stay_within_the_keys_connection_limit(
    two_processes: tuple[Setup, list[tuple[int, str, str]]],
) -> None:
    setup, _ = two_processes
    assert setup.sandbox.max_in_flight <= LIMIT


@pytest.mark.e2e
def test_runs_in_separate_processes_sharing_the_governor_in_redis_stay_within_the_keys_limit(
    two_processes_sharing_redis: tuple[Setup, list[tuple[int, str, str]]],
) -> None:
    setup, outcomes = two_processes_sharing_redis
    for code, out, err in outcomes:
        assert code == 0, err
        run = json.loads(out)
        assert run["status"] == "succeeded" and run["counts"]["created"] == 3000 and run["retries"] == 0
    assert setup.sandbox.max_in_flight == LIMIT  # filled by the two processes together, never passed
    setup.assert_exact()


@pytest.mark.e2e
def test_a_pre_flight_refused_by_the_connection_limit_is_retried(tmp_path: Path, sandbox: HoldingSandbox) -> None:
    setup = Setup(tmp_path, sandbox, exports=2, per_export=12 * LIMITS.batch_size)
    sandbox.hold = lambda tags: "G0" in tags  # the first run fills the key's ten connections
    first = setup.popen("exports", "run", "e0", "--json")
    try:
        wait_until(lambda: sandbox.held == LIMIT or first.poll() is not None, what="ten held calls")
        second = setup.popen("exports", "run", "e1", "--json")
        try:
            second.wait(timeout=3)  # a run that retries is still waiting for a free connection
        except subprocess.TimeoutExpired:
            pass
    finally:
        sandbox.release.set()
    results = [(p.wait(timeout=120), *p.communicate(timeout=10)) for p in (first, second)]
    assert [code for code, _, _ in results] == [0, 0], results[1][2]
    setup.assert_exact()


# --- the engine's window of sent but unrecorded batches (in-process, memory destination) -----------


class SlowCommits:
    """An after-batch hook that takes ``delay`` s (a slow disk or a slow observer) and measures, after each
    commit, how many batches the platform holds that are not recorded yet."""

    def __init__(self, platform: MemoryPlatform, delay: float) -> None:
        self.platform, self.delay = platform, delay
        self.committed = 0
        self.most_unrecorded = 0

    @segport.hookimpl
    def segport_after_batch(self, run: segport.Run, export: segport.Export, result: segport.BatchResult) -> None:
        self.committed += 1
        time.sleep(self.delay)
        with self.platform.lock:
            landed = len(self.platform.calls)
        self.most_unrecorded = max(self.most_unrecorded, landed - self.committed)


def test_sent_but_unrecorded_batches_stay_within_the_writers_concurrency(
    ws: Workspace, platform: MemoryPlatform, memory_export: Any
) -> None:
    memory_export(ws, 120)
    hook = SlowCommits(platform, delay=0.05)
    ws.pm.register(hook)
    try:
        run = ws.run_export("all")
    finally:
        ws.pm.unregister(hook)
    assert run.counts["created"] == 120 and len(platform.calls) == 12  # batch_size 10, max_concurrency 3
    assert hook.most_unrecorded <= 3


def test_without_lagging_commits_only_the_batches_in_flight_are_unrecorded(
    ws: Workspace, platform: MemoryPlatform, memory_export: Any
) -> None:
    """The control of the test above (its measure can pass): commits that keep up leave at most three."""
    memory_export(ws, 60)
    platform.latency = 0.1
    hook = SlowCommits(platform, delay=0.0)
    ws.pm.register(hook)
    try:
        ws.run_export("all")
    finally:
        ws.pm.unregister(hook)
    assert hook.committed == 6 and 0 <= hook.most_unrecorded <= 3
