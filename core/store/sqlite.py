"""The embedded store: one SQLite database (WAL) in the workspace folder.

Every write goes through :meth:`SQLiteStore.transaction` (``BEGIN IMMEDIATE``), so a failed
command changes nothing. Long reads (the profile stream of a run) use a second connection, a
consistent snapshot while the run commits its batches. The run lock is a partial unique index
(one 'running' run per export) plus the pid and host of the run: a run whose process died on
this host is stale.
"""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from sqlalchemy import Column, MetaData, Table, bindparam, create_engine, delete, event, func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool
from sqlalchemy.schema import CreateTable

from ..errors import InputError, WorkspaceError
from ..models import Export
from ..private import create_file
from .base import SQLStore
from .database import Database, Prepared, chunks, driver_error, dumps, insert
from .interface import Loaded, ProfileRow
from .runs import pid_alive, run_is_stale
from .schema import INTEGER, TEXT, filter_members, profiles, runs

DB_FILE = "segport.db"
COMPANIONS = ("-wal", "-shm", "-journal")  # the files SQLite keeps beside the database: same name, these suffixes
PRAGMAS = ("PRAGMA journal_mode=WAL", "PRAGMA foreign_keys=ON", "PRAGMA synchronous=NORMAL")

__all__ = ["DB_FILE", "SQLiteStore", "database_files", "pid_alive", "run_is_stale"]


def database_files(path: Path) -> list[Path]:
    """Return the database file and its write-ahead log, shared-memory and journal files (existing or not)."""
    return [path, *(path.with_name(path.name + suffix) for suffix in COMPANIONS)]


# The keys of the load in progress, with their line: a repeated key is a one-line error naming both lines.
load_keys = Table(
    "load_keys",
    MetaData(),
    Column("key", TEXT, primary_key=True),
    Column("line", INTEGER),
    prefixes=["TEMPORARY"],
    sqlite_with_rowid=False,
)
_LOAD_KEY = Prepared(lambda d: load_keys.insert().values(key=bindparam("key"), line=bindparam("line")), "key", "line")
_FIRST_LINE = Prepared(lambda d: select(load_keys.c.line).where(load_keys.c.key == bindparam("key")), "key")


def _upsert_profile(dialect: Any) -> Any:
    statement = insert(dialect, profiles).values(key=bindparam("key"), attrs=bindparam("attrs"), seq=bindparam("seq"))
    changed = profiles.c.attrs != statement.excluded.attrs  # identical rows keep their version
    return statement.on_conflict_do_update(
        index_elements=[profiles.c.key],
        set_={"attrs": statement.excluded.attrs, "seq": statement.excluded.seq},
        where=changed,
    )


_UPSERT_PROFILE = Prepared(_upsert_profile, "key", "attrs", "seq")


class SQLiteDatabase(Database):
    """A connection to the SQLite file; transactions are SQLite's own statements."""

    def begin_write(self) -> None:
        """Start a write transaction (``BEGIN IMMEDIATE``: serialised with every other writer)."""
        self.driver.execute("BEGIN IMMEDIATE")  # takes the write lock now, not at the first write

    def begin_snapshot(self) -> None:
        """Start a transaction whose reads all see one snapshot of the database."""
        self.driver.execute("BEGIN")  # the snapshot is taken at the first read

    def commit(self) -> None:
        """Commit the transaction."""
        self.driver.execute("COMMIT")

    def rollback(self) -> None:
        """End the transaction without its changes (nothing when none is open)."""
        if self.driver.in_transaction:
            self.driver.execute("ROLLBACK")

    @property
    def in_transaction(self) -> bool:
        """Whether a transaction is open on the connection."""
        return bool(self.driver.in_transaction)

    def legacy_schema_version(self) -> int:
        """How many migrations of a release before Alembic ran (``PRAGMA user_version``)."""
        return int(self.driver.execute("PRAGMA user_version").fetchone()[0])


class SQLiteStore(SQLStore):
    """The store on one SQLite file."""

    db: SQLiteDatabase

    def __init__(self, path: Path) -> None:
        self.path = path
        self.url = f"sqlite:///{path.resolve()}"
        engine = create_engine(
            f"sqlite:///{path}",
            poolclass=NullPool,
            isolation_level="AUTOCOMMIT",  # transactions are explicit: see SQLiteDatabase
            hide_parameters=True,  # an error never quotes profiles or secrets
            connect_args={"check_same_thread": False, "timeout": 30},
        )
        event.listen(engine, "connect", _set_pragmas)
        super().__init__(engine)

    def _connect(self) -> SQLiteDatabase:
        try:
            if str(self.path) != ":memory:":  # private (0600): SQLite would use the umask; its WAL/SHM copy this mode
                create_file(self.path)
        except FileNotFoundError:
            pass  # no folder: SQLite's own error below names the file
        except OSError as exc:
            raise WorkspaceError(f"cannot open the workspace database {self.path}: {exc.strerror or exc}") from None
        try:
            return SQLiteDatabase(self.engine.connect())
        except (sqlite3.Error, DBAPIError) as exc:
            raise WorkspaceError(f"cannot open the workspace database {self.path}: {driver_error(exc)}") from None

    @contextmanager
    def transaction(self) -> Iterator[SQLiteStore]:
        """One write transaction: committed on success, rolled back on any exception."""
        try:
            self.db.begin_write()
        except sqlite3.OperationalError as exc:
            raise WorkspaceError(
                f"the workspace database is busy or read-only ({exc}); retry, or check {self.path}"
            ) from None
        try:
            yield self
            self.db.commit()
        except (sqlite3.OperationalError, DBAPIError) as exc:  # disk full, read-only file, I/O error
            self.db.rollback()
            if isinstance(driver_error(exc), sqlite3.OperationalError):
                raise WorkspaceError(
                    f"cannot write the workspace database ({driver_error(exc)}): check free disk space and "
                    f"permissions of {self.path.parent}; nothing of this step was saved"
                ) from None
            raise
        except BaseException:
            self.db.rollback()
            raise

    # -- profiles -------------------------------------------------------------------------------
    def load_profiles(
        self,
        rows: Iterable[ProfileRow],
        *,
        replace: bool,
        source: str,
        on_chunk: Callable[[list[Any]], None] | None = None,
    ) -> Loaded:
        """Upsert profile rows; all-or-nothing (call it inside a transaction).

        Each chunk's keys go into a temporary table first, whose primary key catches a repeated key.
        """
        seq = self.next_load()
        before = self.profile_count()
        self.db.execute(CreateTable(load_keys, if_not_exists=True))
        self.db.execute(delete(load_keys))
        count = sum(self._load_chunk(chunk, source, seq, on_chunk) for chunk in chunks(rows))
        added, updated = self.load_counts(before, seq)
        removed = 0
        if replace:
            removed = self.db.execute(delete(profiles).where(profiles.c.key.not_in(select(load_keys.c.key)))).rowcount
            self.db.execute(delete(filter_members).where(filter_members.c.profile_key.not_in(select(profiles.c.key))))
        self.db.execute(delete(load_keys))
        return Loaded(count, self.profile_count(), seq, added, updated, removed)

    def _load_chunk(
        self, chunk: list[ProfileRow], source: str, seq: int, on_chunk: Callable[[list[Any]], None] | None
    ) -> int:
        try:
            self.db.run_many(_LOAD_KEY, [(r.key, r.line) for r in chunk])
        except sqlite3.IntegrityError:
            self._raise_duplicate(chunk, source)
        self.db.run_many(_UPSERT_PROFILE, [(r.key, dumps(r.attrs), seq) for r in chunk])
        if on_chunk is not None:
            on_chunk(chunk)
        return len(chunk)

    def _raise_duplicate(self, chunk: list[ProfileRow], source: str) -> None:
        seen: dict[str, int] = {}
        for row in chunk:
            first = seen.get(row.key)
            if first is None:
                found = self.db.run(_FIRST_LINE, (row.key,)).fetchone()
                first = found[0] if found and found[0] != row.line else None
            if first is not None and first != row.line:
                raise InputError(
                    f"{source}: line {row.line} repeats key {row.key!r} first seen on line {first} "
                    "(keys must be unique: remove or merge the duplicate rows)"
                )
            seen[row.key] = row.line
        raise InputError(f"{source}: duplicate keys (keys must be unique)")

    # -- run lock -------------------------------------------------------------------------------
    def _next_run_id(self) -> int | None:
        """Return an id past every run pruning deleted: SQLite's own max(id) + 1 would reuse pruned ids.

        PostgreSQL's identity sequence never goes back: its store keeps the database's numbering.
        """
        high_water = self.run_id_high_water()
        if not high_water:
            return None
        newest = self.db.execute(select(func.max(runs.c.id))).scalar() or 0
        return max(int(newest), high_water) + 1

    def _lock_run(self, export: Export, host: str) -> None:
        self._interrupt_stale(export, host)  # the unique index then allows one 'running' run

    def _run_stale(
        self, run_id: int, export_id: int | None, pid: int, run_host: str, host: str, heartbeat_at: str | None
    ) -> bool:
        return run_is_stale(run_id, pid, run_host, host, heartbeat_at)


def _set_pragmas(connection: sqlite3.Connection, record: object) -> None:
    """Every connection: write-ahead log (readers never block the writer), foreign keys, fast commits."""
    for pragma in PRAGMAS:
        connection.execute(pragma)
