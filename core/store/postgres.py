"""The shared store: a PostgreSQL database named by a URL (``postgresql://user:password@host:port/db``).

The statements are the shared ones (SQLAlchemy Core, compiled for PostgreSQL). What differs:

- one connection per store, in autocommit mode with explicit transactions; every write
  transaction first takes one transaction-level advisory lock, so writes are serialised as on
  SQLite (``BEGIN IMMEDIATE``) and a read-modify-write never races another worker;
- a run's snapshot is a ``REPEATABLE READ`` transaction, and its long queries read through
  server-side cursors;
- profile loads COPY the file into a temporary table, then upsert it in one statement;
- the run lock is a session advisory lock on the export id, held by the run's connection: it
  holds across machines, and a worker that dies drops its connection and so its lock. A
  'running' run whose lock nobody holds is stale and marked interrupted.

Needs psycopg 3 (``pip install 'segport[postgres]'``).
"""

from __future__ import annotations

import itertools
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator, Sequence
from urllib.parse import urlsplit

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus
from sqlalchemy import Column, MetaData, Table, column, create_engine, func, inspect, literal, select, table
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool
from sqlalchemy.schema import CreateTable

from ..errors import AlreadyRunning, InputError, WorkspaceError
from ..models import Export, Run, RunStatus
from ..urls import without_password
from .base import SQLStore
from .database import Database, Prepared, chunks, driver_error, dumps, insert
from .interface import Loaded, ProfileRow
from .runs import run_is_stale
from .schema import INTEGER, RUNNING, TEXT, filter_members, profiles, runs_one_running

# Advisory lock keys (two int4s): (namespace, 0) serialises write transactions; (namespace + 1,
# export id) is an export's run lock.
_WRITE_LOCK = 0x5E6_0001
_RUN_LOCK = 0x5E6_0002
_CURSORS = itertools.count()

# The rows of the load in progress, copied in before they are checked and upserted together.
load_rows = Table(
    "load_rows",
    MetaData(),
    Column("key", TEXT, nullable=False),
    Column("line", INTEGER),
    Column("attrs", TEXT),
    prefixes=["TEMPORARY"],
)
runs_one_running.dialect_options["postgresql"]["where"] = RUNNING  # see segport.store.schema

# Where releases before Alembic kept their schema version (see migrations/versions/0003).
_legacy_version = table("segport_schema", column("version"))
_locks = table("pg_locks", column("pid"), column("locktype"), column("granted"), column("classid"), column("objid"),
               column("objsubid"), column("database"))  # fmt: skip
_databases = table("pg_database", column("oid"), column("datname"))


class PostgresDatabase(Database):
    """A psycopg connection; long queries of a transaction read through server-side cursors."""

    def begin_write(self) -> None:
        """Start a write transaction and take the advisory write lock (serialised with every other writer)."""
        self.driver.execute("BEGIN")
        self.execute(select(func.pg_advisory_xact_lock(_WRITE_LOCK, 0)))

    def begin_snapshot(self) -> None:
        """Start a ``REPEATABLE READ`` transaction: its reads all see one snapshot of the database."""
        self.driver.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")

    def commit(self) -> None:
        """Commit the transaction."""
        self.driver.execute("COMMIT")

    def rollback(self) -> None:
        """End the transaction without its changes (nothing when none is open, or the connection is gone)."""
        if self.in_transaction and not self.driver.closed:
            try:
                self.driver.execute("ROLLBACK")
            except psycopg.OperationalError:
                pass  # the connection is gone: so is the transaction

    @property
    def in_transaction(self) -> bool:
        """Whether a transaction is open on the connection (a failed one included)."""
        return bool(self.driver.info.transaction_status != TransactionStatus.IDLE)

    def run_many(self, prepared: Prepared, rows: Sequence[Sequence[Any]]) -> None:
        """Run a prepared statement for each row of parameters."""
        if rows:
            self.driver.cursor().executemany(prepared.sql(self.dialect), rows)

    def stream(self, prepared: Prepared, parameters: Sequence[Any] = ()) -> Iterator[Any]:
        """Return the rows of a long query as they come, inside a transaction through a server-side cursor.

        The cursor fetches them in chunks, so a million profiles never sit in memory; other
        statements may run on the connection meanwhile.
        """
        if not self.in_transaction:
            return super().stream(prepared, parameters)
        cursor = self.driver.cursor(name=f"segport_{next(_CURSORS)}")
        cursor.itersize = 2000
        cursor.execute(prepared.sql(self.dialect), parameters)

        def rows() -> Iterator[Any]:
            try:
                yield from cursor
            finally:
                try:
                    cursor.close()
                except psycopg.Error:  # the transaction ended first: the cursor went with it
                    pass

        return rows()

    def legacy_schema_version(self) -> int:
        """How many migrations of a release before Alembic ran (table ``segport_schema``)."""
        if not inspect(self.connection).has_table("segport_schema"):
            return 0
        return int(self.execute(select(func.max(_legacy_version.c.version))).scalar() or 0)

    def close(self) -> None:
        """Close the connection; a server that is gone has closed it already."""
        try:
            super().close()
        except DBAPIError:  # the server is gone: so is the connection
            pass


class PostgresStore(SQLStore):
    """The store on a PostgreSQL database (one connection per store object)."""

    db: PostgresDatabase

    def __init__(self, url: str) -> None:
        self._raw_url = url
        self.url = without_password(url, "***")
        engine = create_engine(
            "postgresql+psycopg://",
            creator=lambda: psycopg.connect(url, autocommit=True, connect_timeout=10),
            poolclass=NullPool,
            isolation_level="AUTOCOMMIT",  # transactions are explicit: see PostgresDatabase
            paramstyle="format",  # positional, as prepared statements are run
            hide_parameters=True,  # an error never quotes profiles or secrets
        )
        self._runs: dict[int, int] = {}  # run id -> export id of the run locks this connection holds
        self._locking: int | None = None
        super().__init__(engine)

    def _connect(self) -> PostgresDatabase:
        try:
            return PostgresDatabase(self.engine.connect())
        except (psycopg.Error, DBAPIError) as exc:
            raise WorkspaceError(_connect_error(self._raw_url, driver_error(exc))) from None

    @contextmanager
    def transaction(self) -> Iterator[PostgresStore]:
        """One write transaction: committed on success, rolled back on any exception."""
        try:
            self.db.begin_write()
        except (psycopg.Error, DBAPIError) as exc:
            self.db.rollback()
            raise WorkspaceError(
                f"cannot start a transaction in the workspace database {self.url} ({_reason(exc)}): retry"
            ) from None
        try:
            yield self
            self.db.commit()
        except (psycopg.Error, DBAPIError) as exc:
            self.db.rollback()
            if isinstance(driver_error(exc), (psycopg.OperationalError, psycopg.errors.ReadOnlySqlTransaction)):
                raise WorkspaceError(  # the connection was lost, the disk is full, the database read-only
                    f"cannot write the workspace database {self.url} ({_reason(exc)}): check the server; "
                    "nothing of this step was saved"
                ) from None
            raise
        except BaseException:
            self.db.rollback()
            raise

    # -- profiles: COPY into a temporary table, then one upsert -----------------------------------
    def load_profiles(
        self,
        rows: Iterable[ProfileRow],
        *,
        replace: bool,
        source: str,
        on_chunk: Callable[[list[Any]], None] | None = None,
    ) -> Loaded:
        """Upsert profile rows; all-or-nothing (call it inside a transaction).

        The rows are copied (COPY) into a temporary table, checked for repeated keys, then upserted
        in one statement.
        """
        db = self.db
        seq = self.next_load()
        before = self.profile_count()
        db.execute(CreateTable(load_rows, if_not_exists=True))
        db.driver.execute("TRUNCATE load_rows")
        count = sum(self._copy_chunk(chunk, on_chunk) for chunk in chunks(rows))
        db.driver.execute("ANALYZE load_rows")  # the upsert's plan needs its size
        first = func.min(load_rows.c.line).over(partition_by=load_rows.c.key).label("first")
        lines = select(load_rows.c.key, load_rows.c.line, first).subquery()
        duplicate = db.execute(
            select(lines.c.key, lines.c.line, lines.c.first).where(lines.c.line > lines.c.first).order_by(lines.c.line)
        ).first()
        if duplicate is not None:
            raise InputError(
                f"{source}: line {duplicate.line} repeats key {duplicate.key!r} first seen on line {duplicate.first} "
                "(keys must be unique: remove or merge the duplicate rows)"
            )
        upsert = insert(db.dialect, profiles).from_select(
            ["key", "attrs", "seq"], select(load_rows.c.key, load_rows.c.attrs, literal(seq, INTEGER))
        )
        db.execute(
            upsert.on_conflict_do_update(
                index_elements=[profiles.c.key],
                set_={"attrs": upsert.excluded.attrs, "seq": upsert.excluded.seq},
                where=profiles.c.attrs != upsert.excluded.attrs,  # identical rows keep their version
            )
        )
        added, updated = self.load_counts(before, seq)
        removed = 0
        if replace:
            loaded = select(load_rows.c.key).where(load_rows.c.key == profiles.c.key).exists()
            removed = db.execute(profiles.delete().where(~loaded)).rowcount
            kept = select(profiles.c.key).where(profiles.c.key == filter_members.c.profile_key).exists()
            db.execute(filter_members.delete().where(~kept))
        db.driver.execute("TRUNCATE load_rows")
        return Loaded(count, self.profile_count(), seq, added, updated, removed)

    def _copy_chunk(self, chunk: list[ProfileRow], on_chunk: Callable[[list[Any]], None] | None) -> int:
        with self.db.driver.cursor().copy("COPY load_rows (key, line, attrs) FROM STDIN") as copy:
            for row in chunk:
                copy.write_row((row.key, row.line, dumps(row.attrs)))
        if on_chunk is not None:
            on_chunk(chunk)
        return len(chunk)

    # -- run lock -------------------------------------------------------------------------------
    def _lock_run(self, export: Export, host: str) -> None:
        self._interrupt_stale(export, host)
        if not self.db.execute(select(func.pg_try_advisory_lock(_RUN_LOCK, export.id))).scalar():
            raise AlreadyRunning(f"export {export.name!r} is being started by another worker; wait for it to finish")
        self._locking = export.id

    def start_run(self, export: Export, trigger: str, user: str, status: RunStatus = RunStatus.RUNNING) -> Run:
        """Record a new run; for a real run take the export's lock (stale locks are released).

        The lock is a session advisory lock this connection holds until :meth:`run_ended`, or until
        the connection is gone; it is released at once when the run cannot be recorded.
        """
        self._locking = None
        try:
            run = super().start_run(export, trigger, user, status)
        except BaseException:
            if self._locking is not None:  # locked, but the run was not recorded
                self._release(self._locking)
            raise
        if self._locking is not None:
            self._runs[run.id] = self._locking
        return run

    def _lock_holder(self, export_id: int) -> int | None:
        here = select(_databases.c.oid).where(_databases.c.datname == func.current_database()).scalar_subquery()
        lock = _locks.c
        holder = self.db.execute(
            select(lock.pid).where(
                lock.locktype == "advisory",
                lock.granted,
                lock.classid == _RUN_LOCK,
                lock.objid == export_id,
                lock.objsubid == 2,
                lock.database == here,
            )
        ).scalar()
        return None if holder is None else int(holder)

    def _run_stale(
        self, run_id: int, export_id: int | None, pid: int, run_host: str, host: str, heartbeat_at: str | None
    ) -> bool:
        holder = None if export_id is None else self._lock_holder(export_id)
        if holder is None:
            return True  # nobody holds the lock: the run's worker (and its connection) is gone
        if holder == self.db.driver.info.backend_pid:  # this connection's own run
            return run_is_stale(run_id, pid, run_host, host, heartbeat_at)
        return False  # another live connection holds it

    def _interrupt(self, run_id: int) -> None:
        super()._interrupt(run_id)
        self._unlock(run_id)

    def run_ended(self, run_id: int) -> None:
        """Note that this process is done with the run, and release the run's lock."""
        super().run_ended(run_id)
        self._unlock(run_id)

    def _unlock(self, run_id: int) -> None:
        export_id = self._runs.pop(run_id, None)
        if export_id is not None:
            self._release(export_id)

    def _release(self, export_id: int) -> None:
        if not self.db.driver.closed:
            try:
                self.db.execute(select(func.pg_advisory_unlock(_RUN_LOCK, export_id)))
            except DBAPIError:  # the connection is gone, and its locks with it
                pass


def _connect_error(url: str, exc: BaseException) -> str:
    parts = urlsplit(url)
    text = str(exc)
    if parts.password:
        text = text.replace(parts.password, "***")
    where = without_password(url, "***")
    fix = "check SEGPORT_DATABASE_URL or --database-url"
    if "password authentication failed" in text or "no password supplied" in text:
        return f"PostgreSQL refused the user name or password of {where}: {fix}"
    if "does not exist" in text and "database" in text:
        name = parts.path.lstrip("/")
        return f"the PostgreSQL database {name!r} does not exist at {where}: create it (createdb {name}), or {fix}"
    if "invalid" in text or "missing" in text or isinstance(exc, psycopg.ProgrammingError):
        return f"invalid PostgreSQL URL {where}: use postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
    reason = next((line.strip() for line in reversed(text.splitlines()) if line.strip()), type(exc).__name__)
    return f"cannot reach the PostgreSQL server of {where} ({reason}): check it is running, and {fix}"


def _reason(exc: BaseException) -> str:
    """Return the server's message without detail that could quote data or the connection string."""
    cause = driver_error(exc)
    diag = getattr(cause, "diag", None)
    primary = diag.message_primary if diag is not None else None
    return primary or type(cause).__name__


def create_database(admin_url: str, name: str) -> None:
    """Create an empty database ``name`` on the server of ``admin_url`` (for tests and tooling)."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0 STRATEGY FILE_COPY").format(sql.Identifier(name)))


def drop_database(admin_url: str, name: str) -> None:
    """Drop database ``name`` on the server of ``admin_url``, closing the connections still open to it."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
