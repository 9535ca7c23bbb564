"""Run-level failures of the workspace (issue 7, item 3): a full disk or a read-only workspace during a run.

The run must stop with one ``error:`` line and exit 12 (WORKSPACE_ERROR), keep its sync state
consistent (what the platform acknowledged and the store could record, nothing else) and let the next
run, once the disk or the permissions are back, finish exactly.

In-process tests use the memory destination of ``conftest.py`` (batch_size 10, max_concurrency 3).
CLI tests run ``segport`` in a subprocess against the Mailchimp sandbox; the disk fills through
``RLIMIT_FSIZE`` on that process (writes past the limit fail with EFBIG, as on a full disk; CPython
ignores SIGXFSZ), and a folder is made read-only with ``chmod``, or ``chattr +i`` when running as root
(whom permission bits do not stop).
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import sqlite3
import stat
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from sqlalchemy import select

import segport
from segport import ExitStatus, RunStatus, Workspace
from segport.sandboxing import Request
from segport.store import schema
from segport.store.sqlite import SQLiteStore
from segport.testing.fakes import MemoryPlatform
from segport.testing.operator import Operator
from segport_mailchimp.sandbox import MailchimpSandbox

BATCH_CREATE = re.compile(r"/3\.0/lists/[^/]+")


def one_line_error(stderr: str, *words: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@contextmanager
def read_only(*paths: Path) -> Iterator[None]:
    """Make files and folders read-only for the segport processes started inside the block."""
    if os.geteuid() != 0:
        modes = {path: stat.S_IMODE(path.stat().st_mode) for path in paths}
        for path in paths:
            path.chmod(modes[path] & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
        try:
            yield
        finally:
            for path, mode in modes.items():
                path.chmod(mode)
        return
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", *map(str, paths)], capture_output=True).returncode:
        pytest.skip("running as root without 'chattr +i' on this file system: cannot make a folder read-only")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", *map(str, paths)], check=True)


# --- in-process: the store turns read-only during a run --------------------------------------------


class ReadOnlyAfter:
    """After ``batches`` committed batches, the workspace database refuses writes (SQLITE_READONLY), as a
    file system remounted read-only would (PostgreSQL: read-only transactions, as on a standby after a
    failover); :meth:`restore` makes it writable again."""

    def __init__(self, ws: Workspace, batches: int) -> None:
        self.ws, self.batches, self.seen = ws, batches, 0

    @segport.hookimpl
    def segport_after_batch(self, run: segport.Run, export: segport.Export, result: segport.BatchResult) -> None:
        self.seen += 1
        if self.seen == self.batches:
            self._set(True)

    def restore(self) -> None:
        self._set(False)

    def _set(self, read_only: bool) -> None:
        if isinstance(self.ws.store, SQLiteStore):
            self.ws.store.db.driver.execute(f"PRAGMA query_only = {'ON' if read_only else 'OFF'}")
        else:
            self.ws.store.db.driver.execute(f"SET default_transaction_read_only = {'on' if read_only else 'off'}")


def recorded(ws: Workspace) -> set[str]:
    return set(ws.store.db.execute(select(schema.sync_state.c.email)).scalars())


def test_a_store_turning_read_only_mid_run_fails_it_cleanly_and_the_next_run_continues(
    ws: Workspace, platform: MemoryPlatform, tmp_path: Path, memory_export: Any
) -> None:
    memory_export(ws, 100)
    hook = ReadOnlyAfter(ws, batches=3)
    ws.pm.register(hook)
    try:
        with pytest.raises(segport.WorkspaceError) as caught:
            ws.run_export("all")
    finally:
        ws.pm.unregister(hook)
    assert caught.value.exit_status is ExitStatus.WORKSPACE_ERROR and "\n" not in str(caught.value)
    assert "read-only" in str(caught.value)
    hook.restore()
    kept = recorded(ws)
    assert len(kept) == 30 and kept <= set(platform.members)  # three batches recorded, all of them delivered

    platform.calls.clear()
    run = ws.run_export("all")  # same process, as a scheduler's next run: today AlreadyRunning

    assert run.status is RunStatus.SUCCEEDED
    # the failed run could not record its end: the next run in this process finds it stale
    assert [r.status for r in ws.list_runs("all")] == [RunStatus.SUCCEEDED, RunStatus.INTERRUPTED]
    assert {r.email for call in platform.calls for r in call} == {f"user{i}@example.com" for i in range(100)} - kept
    assert recorded(ws) == set(platform.members) == {f"user{i}@example.com" for i in range(100)}


def test_a_store_turning_read_only_mid_run_records_only_what_was_acknowledged(
    ws: Workspace, platform: MemoryPlatform, tmp_path: Path, memory_export: Any
) -> None:
    """What the test above can check today: one line, exit 12, the sync state a subset of what landed."""
    memory_export(ws, 100)
    hook = ReadOnlyAfter(ws, batches=3)
    ws.pm.register(hook)
    try:
        with pytest.raises(segport.WorkspaceError) as caught:
            ws.run_export("all")
    finally:
        ws.pm.unregister(hook)
        hook.restore()
    assert caught.value.exit_status is ExitStatus.WORKSPACE_ERROR and "\n" not in str(caught.value)
    kept = recorded(ws)
    assert len(kept) == 30 and kept <= set(platform.members)
    assert len(platform.members) - len(kept) <= 2 * 3 * 10  # sent, not recorded: the dispatcher's window


def outcome_rows(ws: Workspace, run_id: int) -> int:
    return len(ws.store.outcomes(run_id))


@pytest.mark.sqlite_only("fills the disk with SQLite's max_page_count")
def test_a_full_disk_keeps_the_run_figures_and_says_what_reached_the_platform(
    ws: Workspace, platform: MemoryPlatform, tmp_path: Path, memory_export: Any
) -> None:
    """Issue 15: the record counted only what was recorded (``requests 0`` when 1,000 profiles had landed),
    and the message said "nothing of this step was saved" without what had reached the platform."""
    memory_export(ws, 300)
    pages = ws.store.db.driver.execute("PRAGMA page_count").fetchone()[0]
    ws.store.db.driver.execute(f"PRAGMA max_page_count = {pages + 2}")  # the disk fills during the run
    try:
        with pytest.raises(segport.WorkspaceError, match="cannot write the workspace database") as raised:
            ws.run_export("all")
    finally:
        ws.store.db.driver.execute("PRAGMA max_page_count = 1073741823")
    [run] = ws.list_runs("all")
    assert run.status is RunStatus.FAILED
    landed = len(platform.members)
    assert outcome_rows(ws, run.id) == len(recorded(ws)) < landed  # the store holds what it could record
    assert run.counts["created"] == landed and run.requests == len(platform.calls)  # the record: what happened
    unrecorded = landed - len(recorded(ws))
    message = str(raised.value)
    assert "\n" not in message and run.error == message
    assert f"but {unrecorded:,} records had reached the platform ({unrecorded:,} created)" in message
    assert message.endswith("the next run sends them again")


def test_after_an_audience_is_replaced_the_next_run_fills_the_new_one(
    ws: Workspace, platform: MemoryPlatform, tmp_path: Path, memory_export: Any
) -> None:
    memory_export(ws, 30)
    ws.run_export("all")
    platform.audiences = {"aud2"}  # aud1 deleted; its replacement has another id
    ws.edit_export("all", options={"audience_id": "aud2"})
    platform.calls.clear()

    run = ws.run_export("all")

    assert run.status is RunStatus.SUCCEEDED
    assert sorted(r.email for call in platform.calls for r in call) == sorted(f"user{i}@example.com" for i in range(30))


# --- the CLI against the Mailchimp sandbox -----------------------------------------------------------


class CountingSandbox(MailchimpSandbox):
    """The Mailchimp sandbox, counting the addresses of every batch create."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.created: list[str] = []

    def authenticate(self, req: Request) -> None:
        if req.method == "POST" and BATCH_CREATE.fullmatch(req.path):
            self.created += [str(m["email_address"]).lower() for m in req.json().get("members") or []]
        super().authenticate(req)


@pytest.fixture
def sandbox() -> Iterator[CountingSandbox]:
    with CountingSandbox(seed=21) as server:
        yield server


COUNT = 6000


def email(i: int) -> str:
    return f"fake{i}@shop.segport-test.net" if i == 5003 else f"person{i}@shop.segport-test.net"


def make_workspace(tmp_path: Path, sandbox: MailchimpSandbox) -> Operator:
    """6,000 profiles, all exported (12 batch calls); profile 5003 has an address Mailchimp rejects."""
    home = tmp_path / "ws"
    profiles = tmp_path / "profiles.csv"
    rows = ["id,email,first_name"] + [f"p{i:05d},{email(i)},First{i}" for i in range(COUNT)]
    profiles.write_text("\n".join(rows) + "\n", encoding="utf-8")
    with Workspace.create(home, "ada") as ws:
        ws.load_profiles(profiles)
        ws.define_segment("All", "email is not empty")
        ws.add_connection("mc", "mailchimp", sandbox.demo_connection(), agree_privacy=True)
        ws.add_export(
            "all",
            connection="mc",
            segments=["All"],
            email_field="email",
            mapping={"FNAME": "first_name"},
            options=sandbox.demo_export_options(),
        )
    return Operator(home)


def members(sandbox: MailchimpSandbox) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = sandbox.state()["lists"][sandbox.audience_id]["members"]
    return found


def sync_state(home: Path) -> set[str]:
    db = sqlite3.connect(home / "segport.db")
    try:
        return {row[0] for row in db.execute("SELECT email FROM sync_state")}
    finally:
        db.close()


def assert_exact(sandbox: MailchimpSandbox, home: Path) -> None:
    """Every profile but the rejected one is a subscribed member with its field and tag, and recorded."""
    landed = members(sandbox)
    wanted = {email(i): i for i in range(COUNT) if i != 5003}
    assert set(landed) == set(wanted)
    for address, i in wanted.items():
        member = landed[address]
        assert (member["status"], member["merge_fields"], member["tags"]) == (
            "subscribed",
            {"FNAME": f"First{i}"},
            ["All"],
        )
    assert sync_state(home) == set(wanted)


def run_cli(op: Operator, *args: str, preexec: Callable[[], None] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "segport", *args],
        env=op.env,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=preexec,
        check=False,
    )


@pytest.mark.e2e
def test_a_disk_filling_mid_run_is_one_line_and_the_next_run_continues(
    tmp_path: Path, sandbox: CountingSandbox
) -> None:
    op = make_workspace(tmp_path, sandbox)
    limit = 256 * 1024  # the run's write-ahead log starts empty: a few batches fit, not twelve

    def full_disk() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = run_cli(op, "exports", "run", "all", preexec=full_disk)

    assert result.returncode == ExitStatus.WORKSPACE_ERROR, result.stderr
    one_line_error(result.stderr, "cannot write the workspace database", "free disk space")
    kept = sync_state(op.home)
    landed = members(sandbox)
    assert 0 < len(kept) < COUNT - 1 and kept <= set(landed)  # some batches recorded, every one of them delivered
    [run] = json.loads(op("runs", "list", "--json").stdout)
    # The failed record is stored when the disk still has room for it, else the next command shows the
    # run interrupted. Its counts may include the batch whose commit failed (see the in-process test).
    assert run["status"] in ("failed", "interrupted") and run["counts"]["created"] >= len(kept)

    sent_before = len(sandbox.created)
    finished = op.run_json("all")  # the disk has room again

    assert finished["status"] == "succeeded"
    assert_exact(sandbox, op.home)
    resent = sandbox.created[sent_before:]
    assert set(resent) == {email(i) for i in range(COUNT)} - kept  # only what was not recorded is sent again


@pytest.mark.e2e
def test_a_read_only_workspace_is_one_line_and_sends_nothing(tmp_path: Path, sandbox: CountingSandbox) -> None:
    op = make_workspace(tmp_path, sandbox)
    files = [path for path in op.home.iterdir() if path.is_file()]
    sent_before = len(sandbox.requests_log)

    with read_only(op.home, *files):
        result = op("exports", "run", "all", check=False)
        listed = op("runs", "list", "--json", check=False)

    assert result.returncode == ExitStatus.WORKSPACE_ERROR, result.stderr
    one_line_error(result.stderr, "cannot open the workspace database", str(op.home))
    assert len(sandbox.requests_log) == sent_before and members(sandbox) == {}  # refused before any call
    assert listed.returncode == ExitStatus.WORKSPACE_ERROR  # a WAL database cannot be read without its -shm file
    one_line_error(listed.stderr, "cannot open the workspace database")

    finished = op.run_json("all")  # permissions restored
    assert finished["status"] == "succeeded" and finished["counts"]["rejected"] == 1
    assert_exact(sandbox, op.home)


@pytest.mark.e2e
def test_an_unwritable_rejects_folder_mid_run_is_one_line_and_the_next_run_continues(
    tmp_path: Path, sandbox: CountingSandbox
) -> None:
    op = make_workspace(tmp_path, sandbox)
    rejects = op.home / "rejects"
    rejects.mkdir()

    with read_only(rejects):  # the first reject comes with batch call 11 of 12
        result = run_cli(op, "exports", "run", "all")

    assert "Traceback" not in result.stderr, result.stderr.strip().splitlines()[-1]
    assert result.returncode == ExitStatus.WORKSPACE_ERROR, result.stderr
    one_line_error(result.stderr, str(rejects))
    assert sync_state(op.home) <= set(members(sandbox))

    finished = op.run_json("all")
    assert finished["status"] == "succeeded"
    assert_exact(sandbox, op.home)
