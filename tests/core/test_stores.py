"""The two stores: the URL that picks a store, PostgreSQL's own behaviour."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from segport import RunStatus, Workspace
from segport.errors import AlreadyRunning, InputError, WorkspaceError
from segport.models import Share
from segport.pipeline.selection import Selection
from segport.store import open_store, sqlite_path
from segport.store.interface import LedgerEntry, LedgerUpdate
from segport.store.upgrade import REVISIONS
from segport.testing.postgres import PASSWORD, PostgresCluster


def test_the_url_picks_the_store(tmp_path: Path) -> None:
    assert sqlite_path(None, tmp_path) == tmp_path / "segport.db"
    assert sqlite_path("sqlite:////srv/ws.db", tmp_path) == Path("/srv/ws.db")
    assert sqlite_path("sqlite:///ws.db", tmp_path) == Path("ws.db")
    assert sqlite_path("postgresql://u:p@h:5432/db", tmp_path) is None
    with pytest.raises(WorkspaceError, match="unsupported database URL") as caught:
        open_store("mysql://u:secret@h/db", tmp_path)
    assert "secret" not in str(caught.value)


def test_an_sqlite_url_names_the_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    Workspace.create(tmp_path / "ws", "ada", database_url=url).close()
    assert (tmp_path / "elsewhere.db").is_file() and not (tmp_path / "ws" / "segport.db").exists()
    with Workspace.open(tmp_path / "ws", "ada", database_url=url) as ws:
        assert [u.name for u in ws.list_users()] == ["ada"]


# -- PostgreSQL ------------------------------------------------------------------------------------
def test_connection_problems_are_one_line_without_the_password(pg_cluster: PostgresCluster, tmp_path: Path) -> None:
    wrong = pg_cluster.url(password="not-the-password")
    cases = {
        wrong: "refused the user name or password",
        pg_cluster.url("nosuchdb"): "does not exist",
        f"postgresql://segport:{PASSWORD}@127.0.0.1:1/x": "cannot reach the PostgreSQL server",
    }
    for url, words in cases.items():
        with pytest.raises(WorkspaceError) as caught:
            Workspace.open(tmp_path / "ws", "ada", database_url=url)
        message = str(caught.value)
        assert words in message and "\n" not in message
        assert PASSWORD not in message and "not-the-password" not in message
        assert caught.value.__cause__ is None and caught.value.__suppress_context__


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_init_twice_and_open_without_init(pg_cluster: PostgresCluster, database_url: str, tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match="no workspace in the database"):
        Workspace.open(tmp_path / "ws", "ada", database_url=database_url)
    Workspace.create(tmp_path / "ws", "ada", database_url=database_url).close()
    with pytest.raises(WorkspaceError, match="exists already in the database") as caught:
        Workspace.create(tmp_path / "other", "ada", database_url=database_url)
    assert PASSWORD not in str(caught.value)


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_run_lock_holds_across_connections_and_dies_with_its_holder(
    database_url: str, ws: Workspace, memory_export: Any
) -> None:
    from segport.store.postgres import PostgresStore

    memory_export(ws, 1)
    export = ws.get_export("all")
    other = PostgresStore(database_url)  # another worker
    held = other.start_run(export, "manual", "ada")
    with pytest.raises(AlreadyRunning, match=f"run {held.id}"):
        ws.store.start_run(export, "manual", "ada")
    ws.store.reap_stale_runs()
    assert ws.store.get_run(held.id).status.value == "running"
    backend = other.db.driver.info.backend_pid
    other.close()  # the worker dies: its connection, and so its lock, is gone
    _wait_for_backend_exit(database_url, backend)  # the server ends the backend after the client left
    ws.store.reap_stale_runs()
    assert ws.store.get_run(held.id).status.value == "interrupted"
    assert ws.run_export("all").status.value == "succeeded"


def assert_keys_come_sorted(ws: Workspace, tmp_path: Path) -> None:
    """The planner compares keys in Python with the order SQL gave them: it must be Python's."""
    keys = ["b", "B", "a", "é", "Z", "_x", "10", "9", "Ä", "a b"]
    csv = tmp_path / "p.csv"
    csv.write_text("id,email\n" + "".join(f"{k},{i}@x.com\n" for i, k in enumerate(keys)), encoding="utf-8")
    ws.load_profiles(csv)
    segment = ws.define_segment("all", "email is not empty")
    snapshot = ws.store.reader()
    try:
        assert Selection(snapshot, [segment]).materialise() == len(keys)
        snapshot.start_plan(lambda mask: "[]")
        assert [c[0] for c in snapshot.candidates(0, 0, every=True)] == sorted(keys)  # c[0]: the key
    finally:
        snapshot.close()


def test_keys_come_in_the_order_python_sorts_them(ws: Workspace, tmp_path: Path) -> None:
    assert_keys_come_sorted(ws, tmp_path)


def test_postgres_sorts_keys_by_bytes_whatever_the_database_collation(
    pg_cluster: PostgresCluster, tmp_path: Path
) -> None:
    import psycopg

    with psycopg.connect(pg_cluster.url(), autocommit=True) as conn:  # a collation where 'a' < 'B'
        conn.execute("CREATE DATABASE icu_en TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C'")
    url = pg_cluster.url("icu_en")
    try:
        with Workspace.create(tmp_path / "ws", "ada", database_url=url) as ws:
            assert_keys_come_sorted(ws, tmp_path)
    finally:
        pg_cluster.drop_database(url)


def test_a_run_that_ends_while_a_reaper_looks_keeps_its_end(ws: Workspace, memory_export: Any) -> None:
    """A reaper reads a run as running, the run ends and drops its lock, then the reaper finds no lock
    holder: its interrupt must not overwrite the end (seen with three workers on PostgreSQL)."""
    memory_export(ws, 1)
    run = ws.store.start_run(ws.get_export("all"), "manual", "ada")
    run.status = RunStatus.SUCCEEDED
    with ws.store.transaction():
        ws.store.update_run(run)
    ws.store.run_ended(run.id)
    with ws.store.transaction():
        ws.store._interrupt(run.id)  # the reaper's late decision, taken on the stale read
    assert ws.store.get_run(run.id).status is RunStatus.SUCCEEDED


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_duplicate_key_in_a_copy_load_names_both_lines(database_url: str, ws: Workspace, tmp_path: Path) -> None:
    csv = tmp_path / "p.csv"
    csv.write_text("id,email\n1,a@x.com\n2,b@x.com\n3,c@x.com\n2,d@x.com\n1,e@x.com\n", encoding="utf-8")
    with pytest.raises(InputError, match="line 5 repeats key '2' first seen on line 3"):
        ws.load_profiles(csv)
    assert ws.store.profile_count() == 0


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_two_processes_migrating_at_once_agree(pg_cluster: PostgresCluster, database_url: str) -> None:
    errors: list[BaseException] = []

    def migrate() -> None:
        try:
            store = open_store(database_url, Path("."))
            store.migrate()
            store.close()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=migrate) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    store = open_store(database_url, Path("."))
    assert store.schema_version() == len(REVISIONS)
    store.close()


def test_missing_server_binaries_fail_under_ci(tmp_path: Path) -> None:
    """Without PostgreSQL, the [postgres] tests skip on a developer's machine but fail in CI."""
    test = tmp_path / "test_needs_pg.py"
    test.write_text("def test_it(pg_cluster):\n    pass\n", encoding="utf-8")
    (tmp_path / "conftest.py").write_text((Path(__file__).parents[1] / "conftest.py").read_text(), encoding="utf-8")
    env = {**os.environ, "PG_BINDIR": str(tmp_path / "none"), "PATH": "/usr/bin:/bin"}
    for ci, outcome in (("", "1 skipped"), ("true", "1 error")):
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=", str(test)],
            capture_output=True, text=True, cwd=tmp_path, env={**env, "CI": ci},
            input="",
        )  # fmt: skip
        assert outcome in result.stdout, result.stdout + result.stderr


def _wait_for_backend_exit(database_url: str, pid: int, deadline_s: float = 30.0) -> None:
    """Wait until the PostgreSQL backend ``pid`` has exited: a closed client's locks go with it."""
    import psycopg

    until = time.monotonic() + deadline_s
    with psycopg.connect(database_url, autocommit=True) as probe:
        while time.monotonic() < until:
            if probe.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone() is None:
                return
            time.sleep(0.02)
    raise AssertionError(f"backend {pid} still alive {deadline_s} s after its client closed")


def test_the_sync_ledger_keeps_the_status_before_segports_own_archive(ws: Workspace) -> None:
    """Per connection, audience and address: the last status, and what segport archived people from."""
    store = ws.store
    with store.transaction():
        mc = store.add_connection(
            name="mc", type="memory", share=Share.ADMINS, config={}, secrets=None, profile_cap=None, user="ada"
        )
    with store.transaction():
        store.save_ledger(
            mc.id,
            "aud1",
            [
                LedgerUpdate("sub@example.com", "subscribed"),
                LedgerUpdate("gone@example.com", "subscribed"),
                LedgerUpdate("nobody@example.com", None),  # nothing reported: nothing kept
            ],
        )
    with store.transaction():
        store.save_ledger(
            mc.id,
            "aud1",
            [
                LedgerUpdate("sub@example.com", None, archived=True),  # the ledger's last status: subscribed
                LedgerUpdate("gone@example.com", "unsubscribed", archived=True),  # the listing said unsubscribed
                LedgerUpdate("other@example.com", "archived"),  # found archived: not by segport
            ],
        )
    assert store.archived_by_segport(mc.id, "aud1") == {
        "sub@example.com": "subscribed",
        "gone@example.com": "unsubscribed",
    }
    assert store.archived_by_segport(mc.id, "aud2") == {}  # another audience knows nothing of them
    entries = store.ledger_entries(mc.id, "aud1", ["sub@example.com", "other@example.com", "nobody@example.com"])
    assert entries == {
        "sub@example.com": LedgerEntry("sub@example.com", "archived", "subscribed"),
        "other@example.com": LedgerEntry("other@example.com", "archived", None),
    }
    with store.transaction():  # seen archived again: still ours; re-added: ours no more
        store.save_ledger(
            mc.id, "aud1", [LedgerUpdate("sub@example.com", "archived"), LedgerUpdate("gone@example.com", "pending")]
        )
    assert store.archived_by_segport(mc.id, "aud1") == {"sub@example.com": "subscribed"}
    with store.transaction():
        store.remove_connection(mc.id)
    assert store.ledger_entries(mc.id, "aud1", ["sub@example.com"]) == {}  # erased with the connection


def test_a_run_id_beyond_64_bits_is_unknown_not_an_overflow(ws: Workspace) -> None:
    from segport.errors import NotFound

    for run_id in (2**63, 10**23, -(2**63) - 1):
        with pytest.raises(NotFound, match="unknown run"):
            ws.get_run(run_id)
