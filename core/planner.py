"""The planner: diff the selection against what the export last delivered, emit only the work.

Both inputs arrive in key order, so the diff is a merge join that holds one row of each at a time.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any, Generator, Iterator

from .contract import Record
from .mapper import Mapped, Mapper

StateRow = tuple[str, str, bytes, str]  # key, email, record hash, markers JSON


@dataclass(frozen=True, slots=True)
class Send:
    """A record to send, and the sync state to store once the destination acknowledged it."""

    record: Record
    digest: bytes
    markers: frozenset[str]


@dataclass(frozen=True, slots=True)
class Reject:
    """A record refused before sending (invalid email, duplicate)."""

    key: str
    email: str
    reason: str
    status: str = "rejected"


@dataclass(frozen=True, slots=True)
class Unchanged:
    key: str


@dataclass(frozen=True, slots=True)
class Forget:
    """An exit with nothing to remove at the destination: only the sync state changes."""

    key: str
    email: str
    digest: bytes


Step = Send | Reject | Unchanged | Forget


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
        if isinstance(step, (Unchanged, Forget)):
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


def plan(
    selected: Iterator[tuple[str, dict[str, Any], frozenset[str]]],
    state: Iterator[StateRow],
    mapper: Mapper,
    *,
    full: bool = False,
) -> Generator[Step, None, None]:
    """Yield one step per selected profile, then the exits of delivered profiles that left.

    ``full`` resends every selected profile (fields and all markers) whatever the state says.
    Duplicate emails: the profile with the smallest key keeps the email; later ones are skipped.
    Exits wait until the whole selection is read (spilled to a temporary file, not memory), so an
    exit never strips a marker from an email that a selected profile holds now.
    """
    holders: dict[str, frozenset[str]] = {}  # email -> segments of the profile holding it
    with _Spill() as exits:
        pending_state = next(state, None)
        for key, attrs, segments in selected:
            while pending_state is not None and pending_state[0] < key:
                exits.add(pending_state)
                pending_state = next(state, None)
            previous = None
            if pending_state is not None and pending_state[0] == key:
                previous, pending_state = pending_state, next(state, None)
            mapped = mapper.map(attrs)
            if isinstance(mapped, str):
                yield Reject(key, str(attrs.get(mapper.email_field) or ""), mapped)
                if previous is not None:
                    exits.add(previous)
                continue
            if mapped.email in holders:
                reason = f"duplicate email {mapped.email!r}: sent once, for the first profile by key"
                yield Reject(key, mapped.email, reason, "skipped")
                if previous is not None:
                    exits.add(previous)
                continue
            holders[mapped.email] = segments
            yield _diff(key, mapped, segments, previous, full)
        while pending_state is not None:
            exits.add(pending_state)
            pending_state = next(state, None)
        for row in exits:
            yield _exit(row, holders.get(row[1], frozenset()))


class _Spill:
    """State rows of exits, kept in a private temporary SQLite file until the selection is read."""

    def __enter__(self) -> _Spill:
        # "" = a private on-disk temporary database; closed by whichever thread finalises the plan
        self.db = sqlite3.connect("", check_same_thread=False)
        self.db.execute("CREATE TABLE exits (key TEXT, email TEXT, digest BLOB, markers TEXT)")
        self.buffer: list[StateRow] = []
        return self

    def add(self, row: StateRow) -> None:
        if row[3] != "[]":  # nothing to remove from a profile that carries no marker
            self.buffer.append(row)
            if len(self.buffer) >= 5000:
                self._flush()

    def _flush(self) -> None:
        self.db.executemany("INSERT INTO exits VALUES (?, ?, ?, ?)", self.buffer)
        self.buffer = []

    def __iter__(self) -> Iterator[StateRow]:
        self._flush()
        yield from self.db.execute("SELECT key, email, digest, markers FROM exits ORDER BY rowid")

    def __exit__(self, *exc: object) -> None:
        self.db.close()


def _diff(key: str, mapped: Mapped, segments: frozenset[str], previous: StateRow | None, full: bool) -> Step:
    if previous is not None and previous[1] != mapped.email:
        # A new address is a new person at the destination. (The old address keeps its markers:
        # a known limitation, documented in docs/architecture.md.)
        return Send(
            Record(key, mapped.email, mapped.fields, segments, segments, frozenset(), True, True),
            mapped.digest,
            segments,
        )
    if previous is None or full:
        old: frozenset[str] = frozenset() if previous is None else frozenset(json.loads(previous[3]))
        add = segments if full else segments - old
        record = Record(key, mapped.email, mapped.fields, segments, add, old - segments, True, previous is None)
        return Send(record, mapped.digest, segments)
    old = frozenset(json.loads(previous[3]))
    changed = previous[2] != mapped.digest
    add, remove = segments - old, old - segments
    if not (changed or add or remove):
        return Unchanged(key)
    record = Record(key, mapped.email, mapped.fields, segments, add, remove, changed, False)
    return Send(record, mapped.digest, segments)


def _exit(row: StateRow, kept: frozenset[str]) -> Send | Forget:
    """A delivered profile no longer selected: remove its markers (never unsubscribe).

    Markers in ``kept`` (those of a selected profile holding the same email now) stay; when no
    marker is left to remove, only the sync state forgets them.
    """
    key, email, digest, markers_json = row
    remove = frozenset(json.loads(markers_json)) - kept
    if not remove:
        return Forget(key, email, digest)
    # ``segments`` is what the address still carries: a kept address is no exit to archive.
    record = Record(key, email, {}, kept, frozenset(), remove, False, False)
    return Send(record, digest, frozenset())
