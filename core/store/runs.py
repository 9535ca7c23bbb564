"""Runs, their outcomes and the run lock's shared part (which 'running' runs are stale).

A running run beats a heartbeat (``runs.heartbeat_at``) every :data:`HEARTBEAT_S` seconds from a
thread of its own connection. A 'running' run is stale when its process is gone (same host), or when
its heartbeat is older than :data:`STALE_AFTER_S` whatever its pid says: a pid can be reused by
another process after a kill, and a run on another host cannot be checked by pid at all.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timezone
from typing import Any, Iterator, Mapping, Sequence

from sqlalchemy import bindparam, insert, select, update

from ..errors import AlreadyRunning, NotFound
from ..models import Export, Run, RunStatus
from .database import Database, Prepared, Repository, dumps, now
from .interface import RESEND_DIGEST, OutcomeRow
from .schema import outcomes, runs, sync_state

_r = runs.c
_COLUMNS = (
    _r.id,
    _r.export,
    _r.status,
    _r.trigger,
    _r.user,
    _r.started_at,
    _r.finished_at,
    _r.counts,
    _r.requests,
    _r.retries,
    _r.reject_file,
    _r.error,
    _r.plan,
    _r.duration_s,
)
_OUTCOME = ("run_id", "profile_key", "email", "status", "reason", "reported_in")
_SAVE_OUTCOME = Prepared(lambda d: insert(outcomes).values({n: bindparam(n) for n in _OUTCOME}), *_OUTCOME)
_PROGRESS = (  # in the table's order, which is the order of the SET clause
    "status",
    "heartbeat_at",
    "finished_at",
    "counts",
    "requests",
    "retries",
    "reject_file",
    "error",
    "plan",
    "duration_s",
)
_UPDATE_RUN = Prepared(
    lambda d: update(runs).where(_r.id == bindparam("run")).values({n: bindparam(f"new_{n}") for n in _PROGRESS}),
    *(f"new_{n}" for n in _PROGRESS),
    "run",
)
INTERRUPTED = (
    "the run stopped without recording its end (its process was killed or crashed, or could not write to "
    "the workspace); the next run resumes it"
)

# Runs this process started and has not finished: a run left 'running' with this process's pid but
# not in this set ended without its final record being written (e.g. a full disk), so it is stale.
_RUNNING_HERE: set[int] = set()

HEARTBEAT_S = 30.0  # how often a running run touches its heartbeat
STALE_AFTER_S = 600.0  # a run whose heartbeat is older than this is stale, whatever its pid says


def run_is_stale(run_id: int, pid: int, run_host: str, host: str, heartbeat_at: str | None = None) -> bool:
    """Whether a 'running' run lost its process: its heartbeat stopped, or (same host) its pid is gone."""
    if heartbeat_stopped(heartbeat_at):
        return True
    if run_host != host:
        return False
    return not pid_alive(pid) or (pid == os.getpid() and run_id not in _RUNNING_HERE)


def heartbeat_stopped(heartbeat_at: str | None) -> bool:
    """Whether a heartbeat (ISO 8601, UTC) is older than :data:`STALE_AFTER_S` (None: no heartbeat known)."""
    if not heartbeat_at:
        return False
    try:
        beat = datetime.fromisoformat(heartbeat_at)
    except ValueError:
        return False
    if beat.tzinfo is None:
        beat = beat.replace(tzinfo=timezone.utc)
    return (datetime.now(timezone.utc) - beat).total_seconds() > STALE_AFTER_S


def pid_alive(pid: int) -> bool:
    """Whether a process with ``pid`` exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _run(row: Any) -> Run:
    """Return a run from a row of its columns (or anything with them as attributes)."""
    return Run(
        row.id,
        row.export,
        RunStatus(row.status),
        row.trigger,
        row.user,
        row.started_at,
        row.finished_at,
        json.loads(row.counts),
        row.requests,
        row.retries,
        row.reject_file,
        row.error,
        json.loads(row.plan) if row.plan else None,
        row.duration_s,
    )


class Runs(Repository):
    """Runs and their outcomes. The backend adds the run lock (:meth:`_lock_run`, :meth:`_run_stale`)."""

    def _connect(self) -> Database:
        raise NotImplementedError

    def _lock_run(self, export: Export, host: str) -> None:
        """Take the export's run lock inside the start transaction, or raise :class:`AlreadyRunning`."""
        raise NotImplementedError

    def _run_stale(
        self, run_id: int, export_id: int | None, pid: int, run_host: str, host: str, heartbeat_at: str | None
    ) -> bool:
        raise NotImplementedError

    def transaction(self) -> AbstractContextManager[Any]:
        """One write transaction (the backend's)."""
        raise NotImplementedError

    def start_run(self, export: Export, trigger: str, user: str, status: RunStatus = RunStatus.RUNNING) -> Run:
        """Record a new run; for a real run take the export's lock (stale locks are released)."""
        host = socket.gethostname()
        values = {
            "export_id": export.id,
            "export": export.name,
            "status": status.value,
            "trigger": trigger,
            "user": user,
            "pid": os.getpid(),
            "host": host,
            "started_at": now(),
            "heartbeat_at": now(),
        }
        with self.transaction():
            if status is RunStatus.RUNNING:
                self._lock_run(export, host)
            run_id = self._next_run_id()
            if run_id is not None:
                values["id"] = run_id
            run_id = int(self.db.execute(insert(runs).values(values).returning(_r.id)).scalar_one())
        if status is RunStatus.RUNNING:
            _RUNNING_HERE.add(run_id)
        return self.get_run(run_id)

    def _next_run_id(self) -> int | None:
        """Return the id the next run must get (None: the database's own numbering never reuses one)."""
        return None

    def run_ended(self, run_id: int) -> None:
        """Note that this process is done with the run, whether or not its final record could be written."""
        _RUNNING_HERE.discard(run_id)

    def _interrupt_stale(self, export: Export, host: str) -> None:
        """Mark the export's stale 'running' runs interrupted; raise :class:`AlreadyRunning` for a live one."""
        running = select(_r.id, _r.pid, _r.host, _r.started_at, _r.heartbeat_at).where(
            _r.export_id == export.id, _r.status == "running"
        )
        for run in self.db.execute(running).all():
            if self._run_stale(run.id, export.id, run.pid, run.host, host, run.heartbeat_at):
                self._interrupt(run.id)
            else:
                raise AlreadyRunning(
                    f"export {export.name!r} is already running (run {run.id}, pid {run.pid} on {run.host}, "
                    f"started {run.started_at}); wait for it to finish"
                )

    def _interrupt(self, run_id: int) -> None:
        self.db.execute(
            update(runs)
            .where(_r.id == run_id, _r.status == "running")  # a run that ended since it was found running keeps its end
            .values(status="interrupted", finished_at=now(), error=INTERRUPTED)
        )

    def reap_stale_runs(self) -> None:
        """Mark runs whose process died as interrupted (their locks are released)."""
        host = socket.gethostname()
        columns = (_r.id, _r.export_id, _r.pid, _r.host, _r.heartbeat_at)
        running = self.db.execute(select(*columns).where(_r.status == "running")).all()
        stale = [
            row.id
            for row in running
            if self._run_stale(row.id, row.export_id, row.pid, row.host, host, row.heartbeat_at)
        ]
        if stale:
            with self.transaction():
                for run_id in stale:
                    self._interrupt(run_id)

    @contextmanager
    def heartbeat(self, run_id: int, every: float | None = None) -> Iterator[None]:
        """Beat the run's heartbeat every ``every`` seconds (default :data:`HEARTBEAT_S`) while the block runs.

        A daemon thread on a connection of its own does it, so a long pre-flight, batch, platform
        job or retry wait never makes a live run look stale. A beat that cannot be written (a busy
        or full database) is skipped; the next one tries again.
        """
        every = HEARTBEAT_S if every is None else every
        stop = threading.Event()
        beat = update(runs).where(_r.id == run_id, _r.status == "running")

        def beat_until_stopped() -> None:
            db: Database | None = None
            try:
                while not stop.wait(every):
                    try:
                        db = db or self._connect()
                        db.execute(beat.values(heartbeat_at=now()))
                    except Exception:
                        continue
            finally:
                if db is not None:
                    db.close()

        thread = threading.Thread(target=beat_until_stopped, name=f"segport-heartbeat-{run_id}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=every + 5)

    def mark_resend(self, export_id: int, keys: Sequence[str]) -> None:
        """Mark the profiles' sync state (if any) so the export's next run sends them again in full.

        The row keeps its address and markers (what the platform may hold), loses its profile
        version (so it is a candidate again) and its record hash (so it matches no record).
        """
        if not keys:
            return
        st = sync_state.c
        statement = (
            update(sync_state)
            .where(st.export_id == export_id, st.profile_key == bindparam("key"))
            .values(seq=None, record_hash=RESEND_DIGEST)
        )
        self.db.execute(statement, [{"key": key} for key in keys])

    def update_run(self, run: Run) -> None:
        """Record the run's progress or end (once per committed batch)."""
        plan = dumps(run.plan) if run.plan is not None else None
        progress = (run.status.value, now(), run.finished_at, dumps(run.counts), run.requests, run.retries)
        self.db.run(_UPDATE_RUN, (*progress, run.reject_file, run.error, plan, run.duration_s, run.id))

    def get_run(self, run_id: int) -> Run:
        """Return the run with id ``run_id``; raise NotFound if there is none."""
        if not -(2**63) <= run_id < 2**63:  # no 64-bit id column holds it (the driver would overflow)
            raise NotFound(f"unknown run {run_id}: never recorded, or pruned (see 'segport runs list')")
        row = self.db.execute(select(*_COLUMNS).where(_r.id == run_id)).first()
        if row is None:
            raise NotFound(f"unknown run {run_id}: never recorded, or pruned (see 'segport runs list')")
        return _run(row)

    def list_runs(self, export: str | None = None, limit: int = 50) -> list[Run]:
        """Return the newest ``limit`` runs (of ``export`` only, when given), newest first."""
        query = select(*_COLUMNS)
        if export is not None:
            query = query.where(_r.export == export)
        return [_run(r) for r in self.db.execute(query.order_by(_r.id.desc()).limit(limit))]

    def save_outcomes(
        self, run_id: int, rows: Sequence[OutcomeRow], reported_in: Mapping[str, int] | None = None
    ) -> None:
        """Record what happened to each profile of a batch of the run.

        ``reported_in``: profile key -> the earlier run whose reject file holds the reject's line.
        """
        earlier = reported_in or {}
        self.db.run_many(_SAVE_OUTCOME, [(run_id, *row, earlier.get(row.key)) for row in rows])

    def outcomes(self, run_id: int, status: str | None = None) -> list[OutcomeRow]:
        """Return the run's outcomes (only those with ``status``, when given), in profile key order."""
        o = outcomes.c
        query = select(o.profile_key, o.email, o.status, o.reason).where(o.run_id == run_id)
        if status:
            query = query.where(o.status == status)
        return [OutcomeRow._make(row) for row in self.db.execute(query.order_by(o.profile_key))]
