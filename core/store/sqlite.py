"""The embedded store: one SQLite database (WAL) in the workspace folder.

Every write goes through :meth:`SQLiteStore.transaction`, so a failed command changes nothing.
Long reads (the profile stream of a run) use a second connection, a consistent snapshot while
the run commits its batches. The run lock is a partial unique index (one 'running' run per
export) plus the pid and host of the run: a run whose process died on this host is stale.
"""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from ..errors import InputError, WorkspaceError
from ..models import Export
from .base import StateRow, Store, _dumps, chunks, now, pid_alive, run_is_stale
from .migrations import MIGRATIONS

DB_FILE = "segport.db"

__all__ = ["DB_FILE", "SQLiteStore", "StateRow", "now", "pid_alive", "run_is_stale"]


class SQLiteStore(Store):
    """The store on one SQLite file."""

    integrity_errors = (sqlite3.IntegrityError,)

    def __init__(self, path: Path) -> None:
        self.path = path
        self.url = f"sqlite:///{path.resolve()}"
        self.db: sqlite3.Connection = self._connect()

    def _connect(self) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA foreign_keys=ON")
            db.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as exc:
            raise WorkspaceError(f"cannot open the workspace database {self.path}: {exc}") from None
        return db

    # -- lifecycle ------------------------------------------------------------------------------
    def schema_version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self) -> None:
        """Bring the schema up to date (each migration in its own transaction)."""
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise WorkspaceError(
                f"the workspace schema (v{version}) is newer than this segport (v{len(MIGRATIONS)}): upgrade segport"
            )
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            with self.transaction():
                for statement in script.split(";"):
                    if statement.strip():
                        self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version = {number}")

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed on success, rolled back on any exception."""
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise WorkspaceError(
                f"the workspace database is busy or read-only ({exc}); retry, or check {self.path}"
            ) from None
        try:
            yield self.db
            self.db.execute("COMMIT")
        except sqlite3.OperationalError as exc:  # disk full, read-only file, I/O error
            self._rollback()
            raise WorkspaceError(
                f"cannot write the workspace database ({exc}): check free disk space and permissions of "
                f"{self.path.parent}; nothing of this step was saved"
            ) from None
        except BaseException:
            self._rollback()
            raise

    def _rollback(self) -> None:
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")

    def reader(self) -> sqlite3.Connection:
        """A separate connection for long streaming reads (the caller closes it)."""
        return self._connect()

    # -- profiles -------------------------------------------------------------------------------
    def load_profiles(
        self,
        rows: Iterable[Any],
        *,
        replace: bool,
        source: str,
        on_chunk: Callable[[list[Any]], None] | None = None,
    ) -> tuple[int, int, int]:
        db = self.db
        seq = self._next_seq()
        db.execute("CREATE TEMP TABLE IF NOT EXISTS load_keys (key TEXT PRIMARY KEY, line INTEGER) WITHOUT ROWID")
        db.execute("DELETE FROM temp.load_keys")
        count = sum(self._load_chunk(chunk, source, seq, on_chunk) for chunk in chunks(rows))
        if replace:
            db.execute("DELETE FROM profiles WHERE key NOT IN (SELECT key FROM temp.load_keys)")
            db.execute("DELETE FROM filter_members WHERE profile_key NOT IN (SELECT key FROM profiles)")
        db.execute("DELETE FROM temp.load_keys")
        total = db.execute("SELECT count(*) FROM profiles").fetchone()[0]
        return count, total, seq

    def _load_chunk(self, chunk: list[Any], source: str, seq: int, on_chunk: Callable[[list[Any]], None] | None) -> int:
        if not chunk:
            return 0
        try:
            self.db.executemany("INSERT INTO temp.load_keys(key, line) VALUES (?, ?)", [(r.key, r.line) for r in chunk])
        except sqlite3.IntegrityError:
            self._raise_duplicate(chunk, source)
        self.db.executemany(
            "INSERT INTO profiles(key, attrs, seq) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE "
            "SET attrs = excluded.attrs, seq = excluded.seq WHERE attrs != excluded.attrs",
            [(r.key, _dumps(r.attrs), seq) for r in chunk],
        )
        if on_chunk is not None:
            on_chunk(chunk)
        return len(chunk)

    def _raise_duplicate(self, chunk: list[Any], source: str) -> None:
        seen: dict[str, int] = {}
        for row in chunk:
            first = seen.get(row.key)
            if first is None:
                found = self.db.execute("SELECT line FROM temp.load_keys WHERE key = ?", (row.key,)).fetchone()
                first = found[0] if found and found[0] != row.line else None
            if first is not None and first != row.line:
                raise InputError(
                    f"{source}: line {row.line} repeats key {row.key!r} first seen on line {first} "
                    "(keys must be unique: remove or merge the duplicate rows)"
                )
            seen[row.key] = row.line
        raise InputError(f"{source}: duplicate keys (keys must be unique)")

    # -- run lock -------------------------------------------------------------------------------
    def _lock_run(self, export: Export, host: str) -> None:
        self._interrupt_stale(export, host)  # the unique index then allows one 'running' run

    def _run_stale(self, run_id: int, export_id: int | None, pid: int, run_host: str, host: str) -> bool:
        return run_is_stale(run_id, pid, run_host, host)
