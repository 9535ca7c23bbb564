"""One run's snapshot of the workspace, and its scratch space as temporary tables of its connection.

The selection (``sel``: key, segment bitmask) is computed once and then counted, diffed against
the sync state and scanned without being held in memory; the planner's working sets (the
addresses taken in the run, the exits waiting for the end of the selection) live beside it. On
PostgreSQL long queries read through server-side cursors, so other statements run meanwhile.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

from sqlalchemy import (
    ColumnElement,
    Select,
    Table,
    and_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.schema import CreateTable

from .catalog import FilterCacheQueries
from .database import Database, IndexedBy, Prepared
from .database import insert as dialect_insert
from .interface import Candidate, Delivered, Holder, StoredProfile
from .schema import (
    INTEGER,
    exits,
    filter_members,
    held,
    profiles,
    segment_members,
    selection,
    selection_markers,
    sync_state,
)

s, p, m, ss = selection.c, profiles.c, selection_markers.c, sync_state.c


def _changed(state: Any) -> ColumnElement[bool]:
    """Return the condition that a selected profile's delivered state may be out of date.

    ``state`` is sync_state's columns. Out of date: never delivered, a newer profile version,
    another data matching, or other markers.
    """
    return or_(
        state.profile_key.is_(None),
        state.seq.is_distinct_from(p.seq),
        state.mapping.is_distinct_from(bindparam("mapping")),
        state.markers != m.markers,
    )


def _candidates(every: bool) -> Select[Any]:
    delivered = and_(ss.export_id == bindparam("export"), ss.profile_key == s.key)
    joined = selection.join(profiles, p.key == s.key).join(selection_markers, m.segs == s.segs)
    query = select(s.key, s.segs, p.attrs, p.seq, ss.email, ss.record_hash, ss.markers)
    query = query.select_from(joined.outerjoin(sync_state, delivered))
    return query.order_by(s.key) if every else query.where(_changed(ss)).order_by(s.key)


def _steady_holders() -> Select[Any]:
    """Return the query of :meth:`SQLSnapshot.steady_holders`.

    It reads sync state through the email index on SQLite, whose planner would not pick it without
    statistics.
    """
    by_email = IndexedBy(sync_state, "sync_state_by_email")
    st = by_email.c
    joined = (
        by_email.join(selection, s.key == st.profile_key)
        .join(profiles, p.key == st.profile_key)
        .join(selection_markers, m.segs == s.segs)
    )
    return (
        select(st.profile_key, st.email, st.record_hash, st.markers, s.segs)
        .select_from(joined)
        .where(st.export_id == bindparam("export"), st.email == bindparam("email"), ~_changed(st))
        .order_by(st.profile_key)
    )


def _upsert_selected(dialect: Dialect, rows: Select[Any] | None = None) -> Any:
    """Return an INSERT into the selection of ``rows`` (else of one key and bitmask).

    A profile selected already gets the new bitmask OR-ed into its own.
    """
    statement = dialect_insert(dialect, selection)
    if rows is None:
        statement = statement.values(key=bindparam("key"), segs=bindparam("segs"))
    else:
        statement = statement.from_select(["key", "segs"], rows)
    return statement.on_conflict_do_update(
        index_elements=[s.key], set_={"segs": s.segs.bitwise_or(statement.excluded.segs)}
    )


_SELECT_PROFILE = Prepared(_upsert_selected, "key", "segs")
_CANDIDATES = Prepared(lambda d: _candidates(every=False), "export", "mapping")
_EVERY_CANDIDATE = Prepared(lambda d: _candidates(every=True), "export")
_STEADY_HOLDERS = Prepared(lambda d: _steady_holders(), "export", "email", "mapping")
_HAS_STATE = Prepared(lambda d: select(exists().where(ss.export_id == bindparam("export"))), "export")
_HOLD = Prepared(
    lambda d: dialect_insert(d, held).values(email=bindparam("email"), segs=bindparam("segs")).on_conflict_do_nothing(),
    "email",
    "segs",
)
_HOLDER = Prepared(lambda d: select(held.c.segs).where(held.c.email == bindparam("email")), "email")
_SPILL = Prepared(
    lambda d: insert(exits).values({n: bindparam(n) for n in ("key", "email", "digest", "markers")}),
    "key",
    "email",
    "digest",
    "markers",
)
_EXITS = Prepared(lambda d: select(exits.c.key, exits.c.email, exits.c.digest, exits.c.markers).order_by(exits.c.n))
_LEFT = Prepared(
    lambda d: (
        select(ss.profile_key, ss.email, ss.record_hash, ss.markers)
        .where(
            ss.export_id == bindparam("export"),
            ss.markers != bindparam("none"),
            ~exists().where(s.key == ss.profile_key),
        )
        .order_by(ss.profile_key)
    ),
    "export",
    "none",
)
NO_MARKERS = "[]"


class SQLSnapshot(FilterCacheQueries):
    """A :class:`~segport.store.interface.Snapshot` on its own connection (see the module docstring)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._created: set[str] = set()
        try:
            db.begin_snapshot()
        except BaseException:
            db.close()
            raise

    def close(self) -> None:
        """End the snapshot and close its connection; its scratch space goes with it."""
        try:
            self.db.rollback()
        finally:
            self.db.close()

    def _fresh(self, table: Table) -> None:
        """Create the scratch table on first use, else empty it."""
        if table.name in self._created:
            self.db.execute(delete(table))
            return
        self.db.execute(CreateTable(table, if_not_exists=True))
        self.db.execute(delete(table))
        self._created.add(table.name)

    # -- the selection ------------------------------------------------------------------------------
    def clear_selection(self) -> None:
        """Empty the selection (its table is created on first use)."""
        self._fresh(selection)

    def select_static(self, segment_id: int, bit: int) -> None:
        """Add a static segment's members (those with a profile) under ``bit``."""
        mb = segment_members.c
        rows = (
            select(mb.profile_key, bindparam("bit", bit, INTEGER))
            .join(profiles, p.key == mb.profile_key)
            .where(mb.segment_id == segment_id)
        )
        self.db.execute(_upsert_selected(self.db.dialect, rows))

    def select_cached(self, segment_id: int, bit: int, upto: int) -> None:
        """Add a filter segment's cached members loaded up to ``upto`` under ``bit``.

        A cache current with the last load holds only profiles that exist and have not changed
        since (loads keep it so), so its members are taken without reading a profile.
        """
        fm = filter_members.c
        rows = select(fm.profile_key, bindparam("bit", bit, INTEGER)).where(fm.segment_id == segment_id)
        if upto < self.last_load():
            rows = rows.join(profiles, p.key == fm.profile_key).where(p.seq <= upto)
        self.db.execute(_upsert_selected(self.db.dialect, rows))

    def select_profiles(self, profiles: Sequence[StoredProfile], bit: int) -> None:
        """Add profiles under ``bit``."""
        self.db.run_many(_SELECT_PROFILE, [(profile.key, bit) for profile in profiles])

    def selected(self) -> int:
        """How many profiles the selection holds."""
        return int(self.db.execute(select(func.count()).select_from(selection)).scalar_one())

    # -- the planner's scratch space ------------------------------------------------------------------
    def start_plan(self, markers: Callable[[int], str]) -> None:
        """Empty the planner's scratch space; record the markers (JSON) of each bitmask in the selection."""
        self._fresh(selection_markers)
        masks = self.db.execute(select(s.segs).distinct()).scalars().all()
        if masks:
            self.db.execute(insert(selection_markers), [{"segs": mask, "markers": markers(mask)} for mask in masks])
        self._fresh(held)
        self._fresh(exits)
        # run once or more per candidate: compiled now, called without another layer
        self._execute = self.db.driver.execute
        self._hold_sql, self._holder_sql = self.db.sql(_HOLD), self.db.sql(_HOLDER)
        self._steady_sql = self.db.sql(_STEADY_HOLDERS)

    def candidates(self, export_id: int, mapping: int, *, every: bool) -> Iterator[Candidate]:
        """Return selected profiles whose delivered state may be out of date (``every``: all), in key order."""
        rows: Iterator[Candidate]
        if every:
            rows = self.db.stream(_EVERY_CANDIDATE, (export_id,))
        else:
            rows = self.db.stream(_CANDIDATES, (export_id, mapping))
        return rows

    def has_sync_state(self, export_id: int) -> bool:
        """Return whether the export has any sync state (False: it never delivered, or was reset)."""
        return bool(self.db.run(_HAS_STATE, (export_id,)).fetchone()[0])

    def steady_holders(self, export_id: int, mapping: int, email: str) -> list[Holder]:
        """Return the selected, unchanged profiles delivered with ``email``, in key order."""
        return list(map(Holder._make, self._execute(self._steady_sql, (export_id, email, mapping))))

    def hold(self, email: str, segs: int) -> bool:
        """Take ``email`` for this run; False when a profile took it already."""
        taken: bool = self._execute(self._hold_sql, (email, segs)).rowcount > 0
        return taken

    def holder_segments(self, email: str) -> int | None:
        """Return the segment bitmask of the profile that took ``email`` in this run (None: none did)."""
        row = self._execute(self._holder_sql, (email,)).fetchone()
        return None if row is None else int(row[0])

    def spill_exits(self, rows: Sequence[Delivered]) -> None:
        """Keep exits (in order) until the selection is planned."""
        self.db.run_many(_SPILL, rows)

    def exits(self) -> Iterator[Delivered]:
        """Return the exits kept, in the order they were spilled."""
        return map(Delivered._make, self.db.stream(_EXITS))

    def left_selection(self, export_id: int) -> Iterator[Delivered]:
        """Profiles delivered with markers that are no longer selected, in key order."""
        return map(Delivered._make, self.db.stream(_LEFT, (export_id, NO_MARKERS)))
