"""The planner: diff the selection against what the export last delivered, emit only the work.

SQL decides which selected profiles may differ from what was delivered (*candidates*): no sync
state yet, a newer profile version (``profiles.seq``), another data matching, or other segment
markers. Only candidates are parsed, mapped and hashed here, in key order; the others are counted
as unchanged without being read, so a delta run over a million profiles costs a few SQL scans.
Working sets (addresses taken in this run, exits) live in temporary tables, not in memory.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any, Generator, Iterable, Iterator

from .contract import Record
from .mapper import Mapped, Mapper
from .selection import Selection
from .store.base import Database, stream

PreviousRow = tuple[str, str, bytes, str]  # key, email, record hash, markers JSON: what was delivered
NO_MARKERS = "[]"


def markers_json(names: Iterable[str]) -> str:
    """How sync state stores a set of markers (compared as text in SQL)."""
    return json.dumps(sorted(names))


@dataclass(frozen=True, slots=True)
class Send:
    """A record to send, and the sync state to store once the destination acknowledged it."""

    record: Record
    digest: bytes
    markers: frozenset[str]
    seq: int | None = None  # the profile version sent (None for an exit)


@dataclass(frozen=True, slots=True)
class Reject:
    """A record refused before sending (invalid email, duplicate)."""

    key: str
    email: str
    reason: str
    status: str = "rejected"


@dataclass(frozen=True, slots=True)
class Unchanged:
    """Selected profiles that need nothing (counted, never read)."""

    count: int = 1


@dataclass(frozen=True, slots=True)
class Remember:
    """Nothing to send; only the sync state changes: an exit with no marker left to remove, or a
    new profile version that maps to the same record."""

    key: str
    email: str
    digest: bytes
    markers: frozenset[str]
    seq: int | None


Step = Send | Reject | Unchanged | Remember


@dataclass
class PlanCounts:
    """What a plan holds, as ``--dry-run`` prints it."""

    selected: int = 0
    upserts: int = 0
    new: int = 0
    marker_adds: int = 0
    marker_removes: int = 0
    exits: int = 0
    unchanged: int = 0
    rejects: int = 0
    duplicates: int = 0
    extra: dict[str, int] = field(default_factory=dict)

    def count(self, step: Step) -> None:
        if isinstance(step, Unchanged):
            self.unchanged += step.count
        elif isinstance(step, Remember):
            self.unchanged += 1
        elif isinstance(step, Reject):
            if step.status == "skipped":
                self.duplicates += 1
            else:
                self.rejects += 1
        else:
            record = step.record
            self.upserts += record.upsert
            self.new += record.upsert and record.new
            self.marker_adds += len(record.add)
            self.marker_removes += len(record.remove)
            self.exits += not record.segments

    def to_dict(self) -> dict[str, int]:
        data = {k: v for k, v in self.__dict__.items() if k != "extra"}
        data.update(self.extra)
        return data


# A selected profile whose delivered state may be out of date ("ss" = sync_state, "m" = its markers).
_CHANGED = (
    "(ss.profile_key IS NULL OR ss.seq IS NOT p.seq OR ss.mapping IS NOT :mapping OR ss.markers != m.markers)"
)
_CANDIDATES = """
    SELECT s.key, s.segs, p.attrs, p.seq, ss.email, ss.record_hash, ss.markers
    FROM temp.sel s JOIN profiles p ON p.key = s.key JOIN temp.sel_markers m ON m.segs = s.segs
    LEFT JOIN sync_state ss ON ss.export_id = :export AND ss.profile_key = s.key
    WHERE {where} ORDER BY s.key
"""
# The selected, unchanged profile (at most one) delivered with an address.
_STEADY_HOLDERS = f"""
    SELECT ss.profile_key, ss.email, ss.record_hash, ss.markers, s.segs
    FROM sync_state ss INDEXED BY sync_state_by_email
    JOIN temp.sel s ON s.key = ss.profile_key JOIN profiles p ON p.key = ss.profile_key
    JOIN temp.sel_markers m ON m.segs = s.segs
    WHERE ss.export_id = :export AND ss.email = :email AND NOT {_CHANGED} ORDER BY ss.profile_key
"""
# Delivered profiles that left the selection and still carry markers.
_LEFT = """
    SELECT ss.profile_key, ss.email, ss.record_hash, ss.markers FROM sync_state ss
    WHERE ss.export_id = :export AND ss.markers != '[]'
    AND NOT EXISTS (SELECT 1 FROM temp.sel s WHERE s.key = ss.profile_key) ORDER BY ss.profile_key
"""


def plan(
    db: Database,
    selection: Selection,
    export_id: int,
    mapper: Mapper,
    *,
    full: bool = False,
) -> Generator[Step, None, None]:
    """Yield the steps of one run: candidates in key order, one count of the unchanged, then exits.

    ``selection`` must be materialised on ``db``. ``full`` makes every selected profile a candidate
    and resends it (fields and all markers) whatever the state says. Duplicate emails: the profile
    with the smallest key keeps the email; later ones are skipped. Exits wait until the whole
    selection is planned, so an exit never strips a marker from an address a selected profile
    holds now.
    """
    params = {"export": export_id, "mapping": mapper.fingerprint}
    db.execute("CREATE TEMP TABLE IF NOT EXISTS sel_markers (segs INTEGER PRIMARY KEY, markers TEXT NOT NULL)")
    db.execute("DELETE FROM temp.sel_markers")
    masks = [row[0] for row in db.execute("SELECT DISTINCT segs FROM temp.sel")]
    db.executemany("INSERT INTO temp.sel_markers VALUES (?, ?)", [(m, markers_json(selection.names(m))) for m in masks])
    holders = _Holders(db, selection, params, steady=not full)
    displaced: list[PreviousRow] = []
    candidates = 0
    with holders, _Spill() as exits:
        candidate_rows = stream(db, _CANDIDATES.format(where="1 = 1" if full else _CHANGED), params)
        for key, mask, attrs, seq, *state in candidate_rows:
            candidates += 1
            segments = selection.names(mask)
            previous: PreviousRow | None = (key, *state) if state[0] is not None else None
            profile = json.loads(attrs)
            mapped = mapper.map(profile)
            if isinstance(mapped, str):
                yield Reject(key, str(profile.get(mapper.email_field) or ""), mapped)
            elif not holders.take(mapped.email, key, mask, displaced):
                reason = f"duplicate email {mapped.email!r}: sent once, for the first profile by key"
                yield Reject(key, mapped.email, reason, "skipped")
            else:
                yield _diff(key, mapped, segments, previous, full, seq)
                previous = None
            if previous is not None:
                exits.add(previous)
            for row in displaced:  # unchanged profiles that lost their address to this one
                reason = f"duplicate email {row[1]!r}: sent once, for the first profile by key"
                yield Reject(row[0], row[1], reason, "skipped")
                exits.add(row)
            candidates += len(displaced)
            displaced.clear()
        yield Unchanged(selection.count - candidates)
        for row in exits:
            yield _exit(row, holders.kept(row[1]))
        for row in stream(db, _LEFT, params):
            yield _exit(row, holders.kept(row[1]))


class _Holders:
    """Which selected profile holds each address in this run: those planned so far (a temporary
    table) or, when state can be steady, the unchanged profile delivered with it."""

    def __init__(self, db: Database, selection: Selection, params: dict[str, Any], *, steady: bool) -> None:
        self.db = db
        self.selection = selection
        self.params = params
        self.displaced: set[str] = set()
        db.execute(
            "CREATE TEMP TABLE IF NOT EXISTS held (email TEXT PRIMARY KEY, segs INTEGER NOT NULL) WITHOUT ROWID"
        )
        db.execute("DELETE FROM temp.held")
        self.steady = steady and db.execute(
            "SELECT 1 FROM sync_state WHERE export_id = ? LIMIT 1", (params["export"],)
        ).fetchone() is not None

    def __enter__(self) -> _Holders:
        return self

    def __exit__(self, *exc: object) -> None:
        self.db.execute("DELETE FROM temp.held")

    def _steady_holder(self, email: str) -> tuple[Any, ...] | None:
        if not self.steady:
            return None
        for row in self.db.execute(_STEADY_HOLDERS, {**self.params, "email": email}):
            if row[0] not in self.displaced:
                return tuple(row)
        return None

    def take(self, email: str, key: str, mask: int, displaced: list[PreviousRow]) -> bool:
        """Give ``email`` to profile ``key`` unless a profile with a smaller key holds it.

        An unchanged profile with a larger key that held it is appended to ``displaced``.
        """
        steady = self._steady_holder(email)  # (once a candidate took the address, it is displaced)
        if steady is not None and steady[0] < key:
            return False
        if not self.db.execute("INSERT OR IGNORE INTO temp.held VALUES (?, ?)", (email, mask)).rowcount:
            return False  # a candidate planned earlier, so with a smaller key, holds it
        if steady is not None:
            self.displaced.add(steady[0])
            displaced.append(steady[:4])
        return True

    def kept(self, email: str) -> frozenset[str]:
        """The segments of the selected profile holding ``email`` now (empty when none does)."""
        row = self.db.execute("SELECT segs FROM temp.held WHERE email = ?", (email,)).fetchone()
        if row is None:
            row = self._steady_holder(email)
            row = None if row is None else (row[4],)
        return frozenset() if row is None else self.selection.names(int(row[0]))


class _Spill:
    """State rows of exits, kept in a private temporary SQLite file until the selection is read."""

    def __enter__(self) -> _Spill:
        # "" = a private on-disk temporary database; closed by whichever thread finalises the plan
        self.db = sqlite3.connect("", check_same_thread=False)
        self.db.execute("CREATE TABLE exits (key TEXT, email TEXT, digest BLOB, markers TEXT)")
        self.buffer: list[PreviousRow] = []
        return self

    def add(self, row: PreviousRow) -> None:
        if row[3] != NO_MARKERS:  # nothing to remove from a profile that carries no marker
            self.buffer.append(row)
            if len(self.buffer) >= 5000:
                self._flush()

    def _flush(self) -> None:
        self.db.executemany("INSERT INTO exits VALUES (?, ?, ?, ?)", self.buffer)
        self.buffer = []

    def __iter__(self) -> Iterator[PreviousRow]:
        self._flush()
        yield from self.db.execute("SELECT key, email, digest, markers FROM exits ORDER BY rowid")

    def __exit__(self, *exc: object) -> None:
        self.db.close()


def _diff(
    key: str, mapped: Mapped, segments: frozenset[str], previous: PreviousRow | None, full: bool, seq: int
) -> Step:
    if previous is not None and previous[1] != mapped.email:
        # A new address is a new person at the destination. (The old address keeps its markers:
        # a known limitation, documented in docs/architecture.md.)
        return Send(
            Record(key, mapped.email, mapped.fields, segments, segments, frozenset(), True, True),
            mapped.digest,
            segments,
            seq,
        )
    if previous is None or full:
        old: frozenset[str] = frozenset() if previous is None else frozenset(json.loads(previous[3]))
        add = segments if full else segments - old
        record = Record(key, mapped.email, mapped.fields, segments, add, old - segments, True, previous is None)
        return Send(record, mapped.digest, segments, seq)
    old = frozenset(json.loads(previous[3]))
    changed = previous[2] != mapped.digest
    add, remove = segments - old, old - segments
    if not (changed or add or remove):
        return Remember(key, mapped.email, mapped.digest, segments, seq)
    record = Record(key, mapped.email, mapped.fields, segments, add, remove, changed, False)
    return Send(record, mapped.digest, segments, seq)


def _exit(row: PreviousRow, kept: frozenset[str]) -> Send | Remember:
    """A delivered profile no longer selected: remove its markers (never unsubscribe).

    Markers in ``kept`` (those of a selected profile holding the same email now) stay; when no
    marker is left to remove, only the sync state forgets them.
    """
    key, email, digest, markers = row
    remove = frozenset(json.loads(markers)) - kept
    if not remove:
        return Remember(key, email, digest, frozenset(), None)
    # ``segments`` is what the address still carries: a kept address is no exit to archive.
    record = Record(key, email, {}, kept, frozenset(), remove, False, False)
    return Send(record, digest, frozenset())
