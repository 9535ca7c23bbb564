"""What both stores share: the store interface, written once in SQL both backends run.

The SQL is SQLite's (``?`` placeholders, ``temp.`` tables); the PostgreSQL store translates it
(:func:`segport.store.postgres.translate`). A store subclass supplies the connection, transactions,
migrations, the bulk profile load and the run lock; everything else is here.
"""

from __future__ import annotations

import json
import os
import socket
from contextlib import AbstractContextManager
from datetime import datetime, timezone
from typing import Any, Callable, ClassVar, Iterable, Iterator, Protocol, Sequence, TypeVar

from ..errors import AlreadyExists, AlreadyRunning, NotFound
from ..models import AuditEntry, Connection, Export, Role, Run, RunStatus, Segment, Share, User

_CHUNK = 5000
T = TypeVar("T")


def chunks(items: Iterable[T], size: int = _CHUNK) -> Iterator[list[T]]:
    """``items`` in lists of ``size`` (the last one shorter, none empty): bulk writes without holding all."""
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# What the destination acknowledged for one profile: key, email, record hash, markers JSON,
# the profile version (``profiles.seq``) and the data matching fingerprint it was sent with.
StateRow = tuple[str, str, bytes, str, int | None, int]


class Cursor(Protocol):
    """What the store's SQL needs of a cursor (sqlite3's and psycopg's both qualify)."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Database(Protocol):
    """A connection as the store, the selection and the planner use it: SQLite's SQL in, rows out."""

    def execute(self, sql: str, parameters: Any = ..., /) -> Any: ...

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> Any: ...

    def close(self) -> None: ...


def stream(db: Database, sql: str, params: Any = ()) -> Iterator[Any]:
    """The rows of a long query, read as they come where the backend can (a PostgreSQL server-side cursor)."""
    streaming: Callable[[str, Any], Iterator[Any]] | None = getattr(db, "stream", None)
    return streaming(sql, params) if streaming is not None else iter(db.execute(sql, params))


def now() -> str:
    """The current UTC time as an ISO 8601 string (seconds precision)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# Runs this process started and has not finished: a run left 'running' with this process's pid but
# not in this set ended without its final record being written (e.g. a full disk), so it is stale.
_RUNNING_HERE: set[int] = set()


def run_is_stale(run_id: int, pid: int, run_host: str, host: str) -> bool:
    """Whether a 'running' run lost its process (same host only: another host cannot be checked)."""
    if run_host != host:
        return False
    return not pid_alive(pid) or (pid == os.getpid() and run_id not in _RUNNING_HERE)


def pid_alive(pid: int) -> bool:
    """Whether a process with ``pid`` exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Store:
    """All persistent state of a workspace. Methods take and return :mod:`segport.models` objects.

    Subclasses set :attr:`db` and :attr:`integrity_errors` and implement the backend's part.
    """

    db: Any  # Database, plus what tests and the backend need of it
    integrity_errors: ClassVar[tuple[type[Exception], ...]] = ()
    url: str  # where the store is, without a password (for messages and workers)

    # -- the backend's part ---------------------------------------------------------------------
    def migrate(self) -> None:
        """Bring the schema up to date."""
        raise NotImplementedError

    def schema_version(self) -> int:
        """How many migrations ran (0: an empty database)."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def transaction(self) -> AbstractContextManager[Any]:
        """One write transaction: committed on success, rolled back on any exception."""
        raise NotImplementedError

    def reader(self) -> Any:
        """A separate connection for long streaming reads (the caller closes it)."""
        raise NotImplementedError

    def load_profiles(
        self,
        rows: Iterable[Any],
        *,
        replace: bool,
        source: str,
        on_chunk: Callable[[list[Any]], None] | None = None,
    ) -> tuple[int, int, int]:
        """Upsert profile rows (``.line``, ``.key``, ``.attrs``); all-or-nothing.

        Rows whose attributes change get this load's sequence number (``profiles.seq``); identical
        rows keep theirs, so the next run's planner skips them. ``replace`` also deletes the
        profiles the file does not hold. ``on_chunk`` sees every chunk of rows once stored.
        Returns (rows loaded, profiles in all, this load's sequence number).
        """
        raise NotImplementedError

    def _lock_run(self, export: Export, host: str) -> None:
        """Take the export's run lock inside the start transaction, or raise :class:`AlreadyRunning`."""
        raise NotImplementedError

    def _run_stale(self, run_id: int, export_id: int | None, pid: int, run_host: str, host: str) -> bool:
        raise NotImplementedError

    def run_ended(self, run_id: int) -> None:
        """This process is done with the run, whether or not its final record could be written."""
        _RUNNING_HERE.discard(run_id)

    def _next_seq(self) -> int:
        seq = int(self.get_setting("profile_seq") or 0) + 1
        self.set_setting("profile_seq", str(seq))
        return seq

    # -- settings and audit ---------------------------------------------------------------------
    def get_setting(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_setting(self, key: str, value: str | None) -> None:
        if value is None:
            self.db.execute("DELETE FROM settings WHERE key = ?", (key,))
        else:
            self.db.execute(
                "INSERT INTO settings(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def audit(self, user: str, action: str, target: str, detail: dict[str, Any] | None = None) -> None:
        self.db.execute(
            "INSERT INTO audit(at, user, action, target, detail) VALUES (?, ?, ?, ?, ?)",
            (now(), user, action, target, _dumps(detail or {})),
        )

    def audit_entries(self, limit: int = 100) -> list[AuditEntry]:
        rows = self.db.execute(
            "SELECT id, at, user, action, target, detail FROM audit ORDER BY id DESC LIMIT ?", (limit,)
        ).fetchall()
        return [AuditEntry(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]

    # -- users ----------------------------------------------------------------------------------
    def add_user(self, name: str, role: Role) -> User:
        try:
            self.db.execute("INSERT INTO users(name, role, created_at) VALUES (?, ?, ?)", (name, role.value, now()))
        except self.integrity_errors:
            raise AlreadyExists(f"user {name!r} exists already (see 'segport users list')") from None
        return self.get_user(name)

    def get_user(self, name: str) -> User:
        row = self.db.execute("SELECT name, role, created_at FROM users WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NotFound(
                f"unknown user {name!r}: pass an existing user with --as or SEGPORT_USER (see 'segport users list')"
            )
        return User(row[0], Role(row[1]), row[2])

    def list_users(self) -> list[User]:
        rows = self.db.execute("SELECT name, role, created_at FROM users ORDER BY name").fetchall()
        return [User(r[0], Role(r[1]), r[2]) for r in rows]

    def remove_user(self, name: str) -> None:
        self.db.execute("DELETE FROM users WHERE name = ?", (name,))

    # -- connections ----------------------------------------------------------------------------
    _CONNECTION_COLUMNS = (
        "id, name, type, share, config, secrets IS NOT NULL, profile_cap, privacy_agreed_by, "
        "privacy_agreed_at, export_user, created_at"
    )

    def add_connection(
        self,
        *,
        name: str,
        type: str,
        share: Share,
        config: dict[str, Any],
        secrets: bytes | None,
        profile_cap: int | None,
        user: str,
    ) -> Connection:
        stamp = now()
        try:
            self.db.execute(
                "INSERT INTO connections(name, type, share, config, secrets, profile_cap, privacy_agreed_by, "
                "privacy_agreed_at, export_user, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (name, type, share.value, _dumps(config), secrets, profile_cap, user, stamp, user, stamp),
            )
        except self.integrity_errors:
            raise AlreadyExists(f"a connection named {name!r} exists already: choose another display name") from None
        return self.get_connection(name)

    def _connection(self, row: tuple[Any, ...]) -> Connection:
        return Connection(
            row[0],
            row[1],
            row[2],
            Share(row[3]),
            json.loads(row[4]),
            bool(row[5]),
            row[6],
            row[7],
            row[8],
            row[9],
            row[10],
        )

    def get_connection(self, name: str) -> Connection:
        row = self.db.execute(f"SELECT {self._CONNECTION_COLUMNS} FROM connections WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NotFound(f"unknown connection {name!r} (see 'segport connections list')")
        return self._connection(row)

    def get_connection_by_id(self, connection_id: int) -> Connection:
        row = self.db.execute(
            f"SELECT {self._CONNECTION_COLUMNS} FROM connections WHERE id = ?", (connection_id,)
        ).fetchone()
        if row is None:
            raise NotFound(f"unknown connection id {connection_id}")
        return self._connection(row)

    def list_connections(self) -> list[Connection]:
        rows = self.db.execute(f"SELECT {self._CONNECTION_COLUMNS} FROM connections ORDER BY name").fetchall()
        return [self._connection(r) for r in rows]

    def connection_secrets(self, connection_id: int) -> bytes | None:
        row = self.db.execute("SELECT secrets FROM connections WHERE id = ?", (connection_id,)).fetchone()
        return row[0] if row else None

    def update_connection_config(self, connection_id: int, config: dict[str, Any], secrets: bytes | None) -> None:
        self.db.execute(
            "UPDATE connections SET config = ?, secrets = ? WHERE id = ?", (_dumps(config), secrets, connection_id)
        )

    def set_profile_cap(self, connection_id: int, cap: int | None) -> None:
        self.db.execute("UPDATE connections SET profile_cap = ? WHERE id = ?", (cap, connection_id))

    def remove_connection(self, connection_id: int) -> int:
        """Erase the connection (secrets included); its exports are detached and disabled."""
        cursor = self.db.execute(
            "UPDATE exports SET connection_id = NULL, enabled = 0, updated_at = ? WHERE connection_id = ?",
            (now(), connection_id),
        )
        self.db.execute("UPDATE connections SET secrets = NULL WHERE id = ?", (connection_id,))
        self.db.execute("DELETE FROM connections WHERE id = ?", (connection_id,))
        return int(cursor.rowcount)

    def get_profile(self, key: str) -> dict[str, Any]:
        row = self.db.execute("SELECT attrs FROM profiles WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise NotFound(f"unknown profile key {key!r} (load profiles with 'segport profiles load')")
        result: dict[str, Any] = json.loads(row[0])
        return result

    # -- segments -------------------------------------------------------------------------------
    def _segment(self, row: tuple[Any, ...]) -> Segment:
        return Segment(row[0], row[1], row[2], row[3], row[4], row[5])

    def find_segment(self, name: str) -> Segment | None:
        row = self.db.execute(
            "SELECT id, name, kind, expression, created_by, updated_at FROM segments WHERE name = ?", (name,)
        ).fetchone()
        return self._segment(row) if row else None

    def get_segment(self, name: str) -> Segment:
        segment = self.find_segment(name)
        if segment is None:
            raise NotFound(f"unknown segment {name!r} (see 'segport segments list')")
        return segment

    def list_segments(self) -> list[Segment]:
        rows = self.db.execute("SELECT id, name, kind, expression, created_by, updated_at FROM segments ORDER BY name")
        return [self._segment(r) for r in rows.fetchall()]

    def save_segment(self, name: str, kind: str, expression: str | None, user: str) -> Segment:
        existing = self.find_segment(name)
        if existing is None:
            self.db.execute(
                "INSERT INTO segments(name, kind, expression, created_by, updated_at) VALUES (?, ?, ?, ?, ?)",
                (name, kind, expression, user, now()),
            )
        else:
            if existing.kind != kind:
                raise AlreadyExists(
                    f"segment {name!r} exists as a {existing.kind} segment: remove it first "
                    "('segport segments remove') or choose another name"
                )
            self.db.execute(
                "UPDATE segments SET expression = ?, updated_at = ? WHERE id = ?", (expression, now(), existing.id)
            )
            if expression != existing.expression:  # the cached membership of the old filter is void
                self.db.execute("UPDATE segments SET cached_seq = NULL WHERE id = ?", (existing.id,))
                self.db.execute("DELETE FROM filter_members WHERE segment_id = ?", (existing.id,))
        return self.get_segment(name)

    def replace_members(self, segment_id: int, keys: Iterable[str]) -> tuple[int, int]:
        """Replace a static segment's members; returns (members, keys matching no profile)."""
        self.db.execute("DELETE FROM segment_members WHERE segment_id = ?", (segment_id,))
        for batch in chunks((segment_id, key) for key in keys):
            self.db.executemany("INSERT OR IGNORE INTO segment_members VALUES (?, ?)", batch)
        members = self.db.execute(
            "SELECT count(*) FROM segment_members WHERE segment_id = ?", (segment_id,)
        ).fetchone()[0]
        unknown = self.db.execute(
            "SELECT count(*) FROM segment_members m WHERE segment_id = ? AND NOT EXISTS "
            "(SELECT 1 FROM profiles p WHERE p.key = m.profile_key)",
            (segment_id,),
        ).fetchone()[0]
        return int(members), int(unknown)

    def remove_segment(self, segment_id: int) -> None:
        self.db.execute("DELETE FROM segments WHERE id = ?", (segment_id,))

    # -- exports --------------------------------------------------------------------------------
    _EXPORT_COLUMNS = (
        "id, name, connection, connection_id, segments, email_field, mapping, options, schedule, enabled, "
        "owner, created_at, updated_at"
    )

    def _export(self, row: tuple[Any, ...]) -> Export:
        return Export(
            row[0],
            row[1],
            row[2],
            row[3],
            json.loads(row[4]),
            row[5],
            json.loads(row[6]),
            json.loads(row[7]),
            row[8],
            bool(row[9]),
            row[10],
            row[11],
            row[12],
        )

    def add_export(self, export: Export) -> Export:
        try:
            self.db.execute(
                "INSERT INTO exports(name, connection, connection_id, segments, email_field, mapping, options, "
                "schedule, enabled, owner, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    export.name,
                    export.connection,
                    export.connection_id,
                    _dumps(export.segments),
                    export.email_field,
                    _dumps(export.mapping),
                    _dumps(export.options),
                    export.schedule,
                    int(export.enabled),
                    export.owner,
                    now(),
                    now(),
                ),
            )
        except self.integrity_errors:
            raise AlreadyExists(f"an export named {export.name!r} exists already: choose another name") from None
        return self.get_export(export.name)

    def update_export(self, export: Export) -> Export:
        self.db.execute(
            "UPDATE exports SET segments = ?, email_field = ?, mapping = ?, options = ?, schedule = ?, enabled = ?, "
            "updated_at = ? WHERE id = ?",
            (
                _dumps(export.segments),
                export.email_field,
                _dumps(export.mapping),
                _dumps(export.options),
                export.schedule,
                int(export.enabled),
                now(),
                export.id,
            ),
        )
        return self.get_export(export.name)

    def get_export(self, name: str) -> Export:
        row = self.db.execute(f"SELECT {self._EXPORT_COLUMNS} FROM exports WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NotFound(f"unknown export {name!r} (see 'segport exports list')")
        return self._export(row)

    def list_exports(self) -> list[Export]:
        rows = self.db.execute(f"SELECT {self._EXPORT_COLUMNS} FROM exports ORDER BY name").fetchall()
        return [self._export(r) for r in rows]

    def remove_export(self, export_id: int) -> None:
        self.db.execute("DELETE FROM exports WHERE id = ?", (export_id,))

    # -- sync state -----------------------------------------------------------------------------
    def refresh_filter_caches(self, segments: Sequence[Segment]) -> None:
        """Bring stale filter-segment caches up to date; no write transaction when none is stale."""
        from ..selection import refresh_filter_cache, stale_filters

        if stale_filters(self.db, segments):
            with self.transaction() as db:
                refresh_filter_cache(db, segments)

    def reset_sync_state(self, export_id: int) -> None:
        """Forget what the export delivered: its next run sends everything."""
        self.db.execute("DELETE FROM sync_state WHERE export_id = ?", (export_id,))

    def save_sync_state(self, export_id: int, rows: list[StateRow]) -> None:
        """Record what the destination acknowledged: (key, email, record hash, markers JSON, seq, mapping)."""
        self.db.executemany(
            "INSERT INTO sync_state(export_id, profile_key, email, record_hash, markers, seq, mapping) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(export_id, profile_key) DO UPDATE SET email = excluded.email, "
            "record_hash = excluded.record_hash, markers = excluded.markers, seq = excluded.seq, "
            "mapping = excluded.mapping",
            [(export_id, *r) for r in rows],
        )

    # -- runs -----------------------------------------------------------------------------------
    _RUN_COLUMNS = (
        "id, export, status, trigger, user, started_at, finished_at, counts, requests, retries, reject_file, "
        "error, plan, duration_s"
    )

    def _run(self, row: tuple[Any, ...]) -> Run:
        return Run(
            row[0],
            row[1],
            RunStatus(row[2]),
            row[3],
            row[4],
            row[5],
            row[6],
            json.loads(row[7]),
            row[8],
            row[9],
            row[10],
            row[11],
            json.loads(row[12]) if row[12] else None,
            row[13],
        )

    def start_run(self, export: Export, trigger: str, user: str, status: RunStatus = RunStatus.RUNNING) -> Run:
        """Record a new run; for a real run take the export's lock (stale locks are released)."""
        host = socket.gethostname()
        with self.transaction():
            if status is RunStatus.RUNNING:
                self._lock_run(export, host)
            run_id = self.db.execute(
                "INSERT INTO runs(export_id, export, status, trigger, user, pid, host, started_at, heartbeat_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (export.id, export.name, status.value, trigger, user, os.getpid(), host, now(), now()),
            ).fetchall()[0][0]
        if status is RunStatus.RUNNING:
            _RUNNING_HERE.add(run_id)
        return self.get_run(run_id)

    def _interrupt_stale(self, export: Export, host: str) -> None:
        """Mark the export's stale 'running' runs interrupted; raise :class:`AlreadyRunning` for a live one."""
        rows = self.db.execute(
            "SELECT id, pid, host, started_at FROM runs WHERE export_id = ? AND status = 'running'", (export.id,)
        ).fetchall()
        for run_id, pid, run_host, started in rows:
            if self._run_stale(run_id, export.id, pid, run_host, host):
                self._interrupt(run_id)
            else:
                raise AlreadyRunning(
                    f"export {export.name!r} is already running (run {run_id}, pid {pid} on {run_host}, "
                    f"started {started}); wait for it to finish"
                )

    def _interrupt(self, run_id: int) -> None:
        self.db.execute(
            "UPDATE runs SET status = 'interrupted', finished_at = ?, "
            "error = 'the run stopped without recording its end (its process was killed or crashed, or could "
            "not write to the workspace); the next run resumes it' WHERE id = ? AND status = 'running'",
            (now(), run_id),  # a run that ended since it was found running keeps its end
        )

    def reap_stale_runs(self) -> None:
        """Mark runs whose process died as interrupted (their locks are released)."""
        host = socket.gethostname()
        stale = [
            run_id
            for run_id, export_id, pid, run_host in self.db.execute(
                "SELECT id, export_id, pid, host FROM runs WHERE status = 'running'"
            ).fetchall()
            if self._run_stale(run_id, export_id, pid, run_host, host)
        ]
        if stale:
            with self.transaction():
                for run_id in stale:
                    self._interrupt(run_id)

    def update_run(self, run: Run) -> None:
        self.db.execute(
            "UPDATE runs SET status = ?, finished_at = ?, counts = ?, requests = ?, retries = ?, reject_file = ?, "
            "error = ?, plan = ?, duration_s = ?, heartbeat_at = ? WHERE id = ?",
            (
                run.status.value,
                run.finished_at,
                _dumps(run.counts),
                run.requests,
                run.retries,
                run.reject_file,
                run.error,
                _dumps(run.plan) if run.plan is not None else None,
                run.duration_s,
                now(),
                run.id,
            ),
        )

    def get_run(self, run_id: int) -> Run:
        row = self.db.execute(f"SELECT {self._RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise NotFound(f"unknown run {run_id} (see 'segport runs list')")
        return self._run(row)

    def list_runs(self, export: str | None = None, limit: int = 50) -> list[Run]:
        if export is None:
            rows = self.db.execute(f"SELECT {self._RUN_COLUMNS} FROM runs ORDER BY id DESC LIMIT ?", (limit,))
        else:
            rows = self.db.execute(
                f"SELECT {self._RUN_COLUMNS} FROM runs WHERE export = ? ORDER BY id DESC LIMIT ?", (export, limit)
            )
        return [self._run(r) for r in rows.fetchall()]

    def save_outcomes(self, run_id: int, rows: list[tuple[str, str, str, str | None]]) -> None:
        self.db.executemany(
            "INSERT INTO outcomes(run_id, profile_key, email, status, reason) VALUES (?, ?, ?, ?, ?)",
            [(run_id, *r) for r in rows],
        )

    def outcomes(self, run_id: int, status: str | None = None) -> list[tuple[str, str, str, str | None]]:
        query = "SELECT profile_key, email, status, reason FROM outcomes WHERE run_id = ?"
        args: tuple[Any, ...] = (run_id,)
        if status:
            query += " AND status = ?"
            args += (status,)
        rows: list[tuple[str, str, str, str | None]] = self.db.execute(query + " ORDER BY profile_key", args).fetchall()
        return rows
