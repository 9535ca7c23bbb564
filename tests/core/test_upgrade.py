"""The schema's migrations, and a workspace made by an earlier release upgrading in place.

The Alembic revisions build the schema the store's statements are written against
(:mod:`segport.store.schema`), and can be undone.

``tests/data/upgrade`` holds what segport 0.1.0 left after one session (see its README): the
SQLite workspace folder, and for PostgreSQL the key file and a ``pg_dump`` of the database. Each
test opens a copy with this code, which upgrades the schema, and runs the export again against
the same Mailchimp sandbox account: the sync state must have survived, so the delta sends nothing
for unchanged profiles, and exactly the one profile changed since.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from segport import Workspace
from segport.store import Store, open_store
from segport.store.base import SQLStore
from segport.store.schema import metadata
from segport.store.upgrade import HEAD, REVISIONS, SCRIPTS, alembic_config
from segport.testing.operator import Operator
from segport_mailchimp.sandbox import MailchimpSandbox

DATA = Path(__file__).resolve().parents[1] / "data" / "upgrade"
API_KEY = "0123456789abcdef0123456789abcdef-us1"  # as make_workspaces.py started the sandbox
SEED = 14
PROFILES = 30
SELECTED = 20  # VIP (every third profile) or Newsletter (every even one)


@pytest.fixture
def sandbox() -> Iterator[MailchimpSandbox]:
    server = MailchimpSandbox(seed=SEED, api_key=API_KEY)
    server.start()
    yield server
    server.stop()


def schema_differences(store: Store) -> list[Any]:
    """What separates the store's database from :mod:`segport.store.schema` (Alembic's comparison);
    ``segport_schema`` is no part of it (the version marker for releases before Alembic)."""
    assert isinstance(store, SQLStore)

    def ours(name: str | None, kind: str, parent: Any) -> bool:
        return not (kind == "table" and name == "segport_schema")

    context = MigrationContext.configure(store.db.connection, opts={"include_name": ours})
    differences: list[Any] = compare_metadata(context, metadata)
    return differences


def test_the_revisions_are_alembics_chain() -> None:
    scripts = ScriptDirectory(str(SCRIPTS))
    chain = [script.revision for script in scripts.walk_revisions()]
    assert chain[::-1] == list(REVISIONS) and scripts.get_current_head() == HEAD


def test_the_migrations_build_the_schema_the_statements_use(database_url: str | None, tmp_path: Path) -> None:
    store = open_store(database_url, tmp_path)
    try:
        assert store.schema_version() == 0
        store.migrate()
        assert store.schema_version() == len(REVISIONS)
        assert schema_differences(store) == []
    finally:
        store.close()


def test_the_migrations_go_down_and_up_again(database_url: str | None, tmp_path: Path) -> None:
    store = open_store(database_url, tmp_path)
    try:
        store.migrate()
        assert isinstance(store, SQLStore)
        with store.transaction():
            command.downgrade(alembic_config(store.db.connection), "base")
        assert set(inspect(store.db.connection).get_table_names()) <= {"alembic_version", "segport_schema"}
        store.migrate()
        assert schema_differences(store) == []
    finally:
        store.close()


def restore(request: pytest.FixtureRequest, home: Path, database_url: str | None) -> None:
    """The earlier release's workspace, as it left it, at ``home`` (and in ``database_url``)."""
    if database_url is None:
        shutil.copytree(DATA / "sqlite", home)
        return
    shutil.copytree(DATA / "postgres", home, ignore=shutil.ignore_patterns("dump.sql"))
    cluster = request.getfixturevalue("pg_cluster")
    subprocess.run(
        [str(cluster.bindir / "psql"), "--quiet", "-v", "ON_ERROR_STOP=1", "--dbname", database_url,
         "--file", str(DATA / "postgres" / "dump.sql")],
        check=True, capture_output=True,
    )  # fmt: skip


def repoint(home: Path, sandbox: MailchimpSandbox) -> None:
    """Point the connection at this test's sandbox (same account, another port)."""
    with Workspace.open(home, user="ada") as ws:
        connection = ws.get_connection("mc")
        with ws.store.transaction():
            config = {**connection.config, "api_base_url": sandbox.api_base_url}
            ws.store.update_connection_config(connection.id, config, ws.store.connection_secrets(connection.id))


def write_profiles(path: Path, renamed: set[int]) -> Path:
    lines = ["id,email,first_name,last_name,tier"]
    for i in range(PROFILES):
        first = "Renamed" if i in renamed else f"First{i}"
        lines.append(f"p{i:03d},person{i}@shop.segport-test.net,{first},Last{i},{'gold' if i % 3 == 0 else 'basic'}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def sqlite_catalog(path: Path) -> dict[str, Any]:
    """What SQLite itself says of each table: columns, foreign keys, indexes (SQLAlchemy's reflection
    misses the ``ON DELETE`` of a foreign key declared on its column, as 0.1.0 declared them)."""
    db = sqlite3.connect(path)
    try:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        catalog = {}
        for name in tables:
            indexes = {
                index[1]: (index[2], index[4], [c[2] for c in db.execute(f"PRAGMA index_info('{index[1]}')")])
                for index in db.execute(f"PRAGMA index_list('{name}')")
            }
            catalog[name] = (
                [tuple(c) for c in db.execute(f"PRAGMA table_info('{name}')")],
                sorted(tuple(f)[2:] for f in db.execute(f"PRAGMA foreign_key_list('{name}')")),
                indexes,
            )
        return catalog
    finally:
        db.close()


@pytest.mark.sqlite_only("compares SQLite's own catalogs")
def test_the_sqlite_schema_of_0_1_0_is_the_revisions_one(tmp_path: Path, database_url: None) -> None:
    shutil.copytree(DATA / "sqlite", tmp_path / "old")
    (tmp_path / "new").mkdir()
    for home in (tmp_path / "old", tmp_path / "new"):
        store = open_store(None, home)
        store.migrate()
        store.close()
    old, new = sqlite_catalog(tmp_path / "old" / "segport.db"), sqlite_catalog(tmp_path / "new" / "segport.db")
    # 0.1.0 declared its single-column primary keys without NOT NULL (`id INTEGER PRIMARY KEY`, the
    # rowid, which is never NULL; `key TEXT PRIMARY KEY` in settings and users, which SQLite lets hold a
    # NULL that segport never writes); the revisions declare NOT NULL: both behave the same.
    relaxed = set()
    for table, (columns, _, _) in old.items():
        for position, column in enumerate(columns):
            if column[5] and column[3] == 0 and new[table][0][position][3] == 1:
                relaxed.add(f"{table}.{column[1]}")
                columns[position] = new[table][0][position]
    assert relaxed == {f"{t}.id" for t in ("audit", "connections", "exports", "runs", "segments")} | {
        "settings.key",
        "users.name",
    }
    assert old == new


def test_an_earlier_release_workspace_upgrades_and_exports(
    request: pytest.FixtureRequest, tmp_path: Path, database_url: str | None, sandbox: MailchimpSandbox
) -> None:
    home = tmp_path / "ws"
    restore(request, home, database_url)
    store = open_store(database_url, home)
    try:
        assert store.schema_version() == 2  # what 0.1.0 recorded
        store.migrate()
        assert store.schema_version() == len(REVISIONS)
        if database_url is not None:  # SQLite's: test_the_sqlite_schema_of_0_1_0_is_the_revisions_one
            assert schema_differences(store) == []
        assert isinstance(store, SQLStore)
        assert store.db.legacy_schema_version() == 3  # 0.1.0 now refuses it as newer than itself
    finally:
        store.close()
    repoint(home, sandbox)
    op = Operator(home)
    if database_url is not None:
        op.env["SEGPORT_DATABASE_URL"] = database_url

    assert [run["id"] for run in json.loads(op("runs", "list", "--json").stdout)] == [3, 2, 1]
    delta = op.run_json("news")
    assert delta["status"] == "succeeded", delta
    assert delta["counts"] == {
        "created": 0, "updated": 0, "unchanged": SELECTED, "skipped": 0, "rejected": 0, "failed": 0
    }  # fmt: skip
    assert sandbox.members() == []  # nothing was sent: what 0.1.0 delivered is still known

    op("profiles", "load", str(write_profiles(tmp_path / "profiles.csv", renamed={3, 6})))  # 3 was renamed before
    changed = op.run_json("news")
    assert changed["status"] == "succeeded", changed
    assert (changed["counts"]["updated"], changed["counts"]["unchanged"]) == (1, SELECTED - 1)
    [member] = sandbox.members()
    assert (member.email, member.fields["FNAME"]) == ("person6@shop.segport-test.net", "Renamed")
