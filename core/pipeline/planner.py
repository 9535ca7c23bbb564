"""The planner: diff the selection against what the export last delivered, emit only the work.

SQL decides which selected profiles may differ from what was delivered (*candidates*): no sync
state yet, a newer profile version (``profiles.seq``), another data matching, or other segment
markers. Only candidates are parsed, mapped and hashed here, in key order; the others are counted
as unchanged without being read, so a delta run over a million profiles costs a few SQL scans.
Working sets (addresses taken in this run, exits) live in the run's snapshot, not in memory.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Generator, Iterable, Iterator

from ..contract import Record
from ..store.interface import RESEND_DIGEST, Delivered, Holder, Snapshot
from .mapper import Mapped, Mapper
from .selection import Selection

PreviousRow = Delivered  # what was delivered: key, email, record hash, markers JSON
NO_MARKERS = "[]"


def markers_json(names: Iterable[str]) -> str:
    """How sync state stores a set of markers (compared as text in SQL)."""
    return json.dumps(sorted(names))


@dataclass(frozen=True, slots=True, kw_only=True)
class Send:
    """A record to send, and the sync state to store once the destination acknowledged it."""

    record: Record
    digest: bytes
    markers: frozenset[str]
    seq: int | None = None  # the profile version sent (None for an exit)


@dataclass(frozen=True, slots=True, kw_only=True)
class Reject:
    """A record refused before sending (invalid email, duplicate)."""

    key: str
    email: str
    reason: str
    status: str = "rejected"


@dataclass(frozen=True, slots=True, kw_only=True)
class Unchanged:
    """Selected profiles that need nothing (counted, never read)."""

    count: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class Remember:
    """Nothing to send; only the sync state changes.

    An exit with no marker left to remove, or a new profile version that maps to the same record.
    """

    key: str
    email: str
    digest: bytes
    markers: frozenset[str]
    seq: int | None


Step = Send | Reject | Unchanged | Remember


@dataclass
class PlanCounts:
    """What a plan holds, as ``--dry-run`` prints it.

    ``created``, ``updated``, ``exits``, ``unchanged``, ``rejected`` and ``skipped`` are the run's
    words. ``created`` is a person this export never delivered to this address (no sync state, or
    another address now): the platform may already know them, and the run then counts them
    updated. ``updated`` is a selected person delivered before whose fields or markers changed;
    ``exits`` are people no longer selected whose markers are removed (the run counts them
    updated). The older figures (``upserts``, ``new``, ``marker_adds``, ``marker_removes``,
    ``rejects``, ``duplicates``) stay for scripts that read them.
    """

    selected: int = 0
    upserts: int = 0
    new: int = 0
    marker_adds: int = 0
    marker_removes: int = 0
    exits: int = 0
    unchanged: int = 0
    rejects: int = 0
    duplicates: int = 0
    created: int = 0
    updated: int = 0
    rejected: int = 0
    skipped: int = 0
    extra: dict[str, int] = field(default_factory=dict)

    def count(self, step: Step) -> None:
        """Add one planned step to the figures."""
        if isinstance(step, Unchanged):
            self.unchanged += step.count
        elif isinstance(step, Remember):
            self.unchanged += 1
        elif isinstance(step, Reject):
            if step.status == "skipped":
                self.duplicates += 1
                self.skipped += 1
            else:
                self.rejects += 1
                self.rejected += 1
        else:
            record = step.record
            if record.upsert:  # a mapped field sent blank (missing, null or spaces): counted by name
                for dest, value in record.fields.items():
                    if value == "":
                        self.extra[f"empty_{dest}"] = self.extra.get(f"empty_{dest}", 0) + 1
            self.upserts += record.upsert
            self.new += record.upsert and record.new
            self.marker_adds += len(record.add)
            self.marker_removes += len(record.remove)
            action = send_action(step)
            self.exits += action == "exit"
            self.created += action == "create"
            self.updated += action == "update"

    def to_dict(self) -> dict[str, int]:
        """Return the figures as the run record's ``plan`` holds them."""
        data = {k: v for k, v in self.__dict__.items() if k != "extra"}
        data.update(self.extra)
        return data


def send_action(send: Send) -> str:
    """Name what a send does to its person, in the run's words: ``create``, ``update`` or ``exit``.

    An exit is the send of a profile no longer selected (it carries no profile version); a create
    is an upsert of a person this export never delivered to this address.
    """
    if send.seq is None:
        return "exit"
    return "create" if send.record.upsert and send.record.new else "update"


def plan(
    snapshot: Snapshot,
    selection: Selection,
    export_id: int,
    mapper: Mapper,
    *,
    full: bool = False,
) -> Generator[Step, None, None]:
    """Yield the steps of one run: candidates in key order, one count of the unchanged, then exits.

    ``selection`` must be materialised in ``snapshot``. ``full`` makes every selected profile a
    candidate and resends it (fields and all markers) whatever the state says. Duplicate emails:
    the profile with the smallest key keeps the email; later ones are skipped. Exits wait until
    the whole selection is planned, so an exit never strips a marker from an address a selected
    profile holds now.
    """
    snapshot.start_plan(lambda mask: markers_json(selection.names(mask)))
    holders = _Holders(snapshot, selection, export_id, mapper.fingerprint, steady=not full)
    exits = _Exits(snapshot)
    displaced: list[Delivered] = []
    candidates = 0
    rows = snapshot.candidates(export_id, mapper.fingerprint, every=full)
    for key, mask, attrs, seq, sent_to, digest, markers in rows:  # unpacked: a million of them
        candidates += 1
        segments = selection.names(mask)
        previous: Delivered | None = None
        if sent_to is not None:
            assert digest is not None and markers is not None
            previous = Delivered(key, sent_to, digest, markers)
        profile = json.loads(attrs)
        mapped = mapper.map(profile)
        if isinstance(mapped, str):
            yield Reject(key=key, email=str(profile.get(mapper.email_field) or ""), reason=mapped)
        elif not holders.take(mapped.email, key, mask, displaced):
            reason = f"duplicate email {mapped.email!r}: sent once, for the first profile by key"
            yield Reject(key=key, email=mapped.email, reason=reason, status="skipped")
        else:
            yield _diff(key, mapped, segments, previous, full, seq)
            previous = None
        if previous is not None:
            exits.add(previous)
        for row in displaced:  # unchanged profiles that lost their address to this one
            reason = f"duplicate email {row.email!r}: sent once, for the first profile by key"
            yield Reject(key=row.key, email=row.email, reason=reason, status="skipped")
            exits.add(row)
        candidates += len(displaced)
        displaced.clear()
    yield Unchanged(count=selection.count - candidates)
    for row in exits:
        yield _exit(row, holders.kept(row.email))
    for row in snapshot.left_selection(export_id):
        yield _exit(row, holders.kept(row.email))


class _Holders:
    """Which selected profile holds each address in this run.

    Those planned so far (held in the snapshot) or, when state can be steady, the unchanged
    profile delivered with it.
    """

    def __init__(self, snapshot: Snapshot, selection: Selection, export_id: int, mapping: int, *, steady: bool) -> None:
        self.snapshot = snapshot
        self.selection = selection
        self.export_id = export_id
        self.mapping = mapping
        self.displaced: set[str] = set()
        self.steady = steady and snapshot.has_sync_state(export_id)

    def _steady_holder(self, email: str) -> Holder | None:
        if not self.steady:
            return None
        for holder in self.snapshot.steady_holders(self.export_id, self.mapping, email):
            if holder.key not in self.displaced:
                return holder
        return None

    def take(self, email: str, key: str, mask: int, displaced: list[Delivered]) -> bool:
        """Give ``email`` to profile ``key`` unless a profile with a smaller key holds it.

        An unchanged profile with a larger key that held it is appended to ``displaced``.
        """
        steady = self._steady_holder(email)  # (once a candidate took the address, it is displaced)
        if steady is not None and steady.key < key:
            return False
        if not self.snapshot.hold(email, mask):
            return False  # a candidate planned earlier, so with a smaller key, holds it
        if steady is not None:
            self.displaced.add(steady.key)
            displaced.append(steady.delivered)
        return True

    def kept(self, email: str) -> frozenset[str]:
        """Return the segments of the selected profile holding ``email`` now (empty when none does)."""
        mask = self.snapshot.holder_segments(email)
        if mask is None:
            steady = self._steady_holder(email)
            mask = None if steady is None else steady.segs
        return frozenset() if mask is None else self.selection.names(mask)


class _Exits:
    """State rows of exits, kept in the snapshot (in chunks) until the selection is read."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.buffer: list[Delivered] = []

    def add(self, row: Delivered) -> None:
        if row.markers != NO_MARKERS:  # nothing to remove from a profile that carries no marker
            self.buffer.append(row)
            if len(self.buffer) >= 5000:
                self._flush()

    def _flush(self) -> None:
        self.snapshot.spill_exits(self.buffer)
        self.buffer = []

    def __iter__(self) -> Iterator[Delivered]:
        self._flush()
        return self.snapshot.exits()


def _diff(
    key: str, mapped: Mapped, segments: frozenset[str], previous: PreviousRow | None, full: bool, seq: int
) -> Step:
    """Plan a candidate: what to send of it (fields, markers to add and remove), or only remember it.

    A profile whose last send failed for good (its state holds :data:`RESEND_DIGEST`) is sent again
    as a full run would, whatever this run's mode.
    """
    resend = full or (previous is not None and previous.digest == RESEND_DIGEST)
    if previous is not None and previous.email != mapped.email:
        # A new address is a new person at the destination. (The old address keeps its markers:
        # a known limitation, documented in docs/architecture.md.)
        add, remove, upsert, new = segments, frozenset[str](), True, True
    elif previous is None or resend:
        old: frozenset[str] = frozenset() if previous is None else frozenset(json.loads(previous.markers))
        add = segments if resend else segments - old
        remove, upsert, new = old - segments, True, previous is None
    else:
        old = frozenset(json.loads(previous.markers))
        upsert = previous.digest != mapped.digest
        add, remove, new = segments - old, old - segments, False
        if not (upsert or add or remove):
            return Remember(key=key, email=mapped.email, digest=mapped.digest, markers=segments, seq=seq)
    record = Record(
        key=key, email=mapped.email, fields=mapped.fields, segments=segments, add=add, remove=remove, upsert=upsert,
        new=new,
    )
    return Send(record=record, digest=mapped.digest, markers=segments, seq=seq)


def _exit(row: PreviousRow, kept: frozenset[str]) -> Send | Remember:
    """Plan the exit of a delivered profile no longer selected: remove its markers, never unsubscribe.

    Markers in ``kept`` (those of a selected profile holding the same email now) stay; when no
    marker is left to remove, only the sync state forgets them.
    """
    key, email, digest, markers = row
    remove = frozenset(json.loads(markers)) - kept
    if not remove:
        return Remember(key=key, email=email, digest=digest, markers=frozenset(), seq=None)
    # ``segments`` is what the address still carries: a kept address is no exit to archive.
    record = Record(
        key=key, email=email, fields={}, segments=kept, add=frozenset(), remove=remove, upsert=False, new=False
    )
    return Send(record=record, digest=digest, markers=frozenset(), seq=None)
