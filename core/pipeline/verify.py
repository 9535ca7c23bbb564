"""Drift: what an export last delivered, compared with what the platform holds now.

:func:`verify` reads the export's sync state (each delivered profile, its address, record hash and
markers) and the platform's current state of those people (:meth:`BatchWriter.read_members`, in
chunks of the destination's batch size, at most ``max_concurrency`` chunks at once, each holding a
slot of the credential's governor as batches do, transient errors retried as for batches). The
fields segport delivered are the profile's mapped fields whenever the profile still maps to the
record hash delivered (so no copy of the fields is stored); a profile changed since is left to the
next run (``pending``) and only its markers are compared. A person who left the export (an exit:
no marker delivered) is compared on markers only: their fields are no longer segport's.

A status change or a person missing that the sync ledger already holds (reported by an earlier
verify, or by a run's writer) is *known*: still listed, but no longer a difference (``found``), so
a monitoring check goes green again once the change has been reported; only new ones count.

What is found becomes :class:`Send` steps for a repair run: markers put back and taken off, fields
written again, and only for people the platform still lets segport write to. Nobody missing at
the platform is re-created, nobody unsubscribed, archived, cleaned, bounced or deleted is touched.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import requests

from ..contract import BatchWriter, MemberState, Record, RunContext, reads_members
from ..errors import PluginError, RetryableDestinationError
from ..governor import GovernedAdapter
from ..store.interface import RESEND_DIGEST, DeliveredPerson, LedgerEntry, LedgerUpdate, Store
from .dispatcher import TRANSIENT, Gate, RetryPolicy
from .engine import RequestCounter, RunRequest, _gate, prepare
from .mapper import Mapper
from .planner import Send

EXAMPLES = 20  # people listed per kind of drift in the report's human form
MISSING = "missing"  # the sync ledger's status for a delivered person the platform no longer knows


@dataclass(frozen=True)
class PersonDrift:
    """How one delivered person differs at the platform from what segport last delivered."""

    key: str
    email: str
    missing: bool = False  # the platform does not know the address at all
    status: str | None = None  # set when the platform no longer lets segport write to the person
    known: bool = False  # the status change or absence was reported before (the sync ledger holds it)
    markers_missing: frozenset[str] = frozenset()  # delivered markers the person no longer carries
    markers_extra: frozenset[str] = frozenset()  # export markers the person carries that were not delivered
    fields: Mapping[str, tuple[object, object]] = field(default_factory=dict)  # field -> (delivered, at the platform)
    repair: Send | None = field(default=None, compare=False)  # what a repair run sends (None: nothing)

    def to_dict(self) -> dict[str, object]:
        """Return the finding as JSON-ready data."""
        data: dict[str, object] = {"key": self.key, "email": self.email}
        if self.missing:
            data["missing"] = True
        if self.status is not None:
            data["status"] = self.status
        if self.missing or self.status is not None:
            data["known"] = self.known
        if self.markers_missing:
            data["markers_missing"] = sorted(self.markers_missing)
        if self.markers_extra:
            data["markers_extra"] = sorted(self.markers_extra)
        if self.fields:
            data["fields"] = {name: {"delivered": old, "platform": new} for name, (old, new) in self.fields.items()}
        data["repairable"] = self.repair is not None
        return data


@dataclass
class DriftReport:
    """What ``exports verify`` found for one export."""

    export: str
    checked: int = 0  # delivered people read back
    in_sync: int = 0
    pending: int = 0  # profiles changed since their last delivery: the next run sends them (fields not compared)
    requests: int = 0
    retries: int = 0
    missing: list[PersonDrift] = field(default_factory=list)
    status_changes: list[PersonDrift] = field(default_factory=list)
    drifted: list[PersonDrift] = field(default_factory=list)  # markers or fields differ, still writable

    @property
    def new(self) -> list[PersonDrift]:
        """Return the differences not reported before: all drift, and status changes and absences not known."""
        return [p for p in (*self.missing, *self.status_changes) if not p.known] + self.drifted

    @property
    def known(self) -> int:
        """Return the count of status changes and absences the sync ledger already held (not differences)."""
        return sum(p.known for p in (*self.missing, *self.status_changes))

    @property
    def found(self) -> bool:
        """Whether anything differs from what segport delivered that was not reported before."""
        return bool(self.new)

    def retried(self) -> None:
        """Count one retry of a transient failure."""
        self.retries += 1

    def repairs(self) -> list[Send]:
        """Return the sends a repair run makes (markers and fields of people segport may still write to)."""
        return [person.repair for person in self.drifted if person.repair is not None]

    def to_dict(self) -> dict[str, object]:
        """Return the report as JSON-ready data."""
        return {
            "export": self.export,
            "in_sync": not self.found,
            "checked": self.checked,
            "new": len(self.new),
            "known": self.known,
            "unchanged": self.in_sync,
            "pending": self.pending,
            "missing": [p.to_dict() for p in self.missing],
            "status_changes": [p.to_dict() for p in self.status_changes],
            "drifted": [p.to_dict() for p in self.drifted],
            "repairable": len(self.repairs()),
            "requests": self.requests,
            "retries": self.retries,
        }


def verify(store: Store, request: RunRequest, options: Mapping[str, object], policy: RetryPolicy) -> DriftReport:
    """Compare what ``request.export`` delivered with the platform's current state of those people.

    The run's pre-flight comes first (in dry-run mode: nothing created), so verify fails where a run
    would (refused credentials, platform unreachable, audience gone) even when nobody was delivered.
    Raise :class:`PluginError` when the destination cannot read its members back. The statuses read
    go to the sync ledger, so that later runs know them as the writers' own reports.
    """
    export, destination = request.export, request.destination
    limits = destination.spec().limits
    report = DriftReport(export.name)
    session = requests.Session()
    adapter = GovernedAdapter(_gate(request, limits.max_concurrency, "calls"), pool_maxsize=limits.max_concurrency)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.auth = destination.auth(request.config)
    counter = RequestCounter()
    session.hooks["response"].append(counter)
    with closing(session):
        context = RunContext(
            export_name=export.name,
            options=options,
            segments=list(export.segments),
            mapped_fields=sorted(export.mapping),
            dry_run=True,
            repair=True,
        )
        writer = destination.writer(session, request.config, context)
        if not reads_members(writer):
            raise PluginError(
                f"destination {request.connection.type} cannot read its members back, so export {export.name!r} "
                "cannot be verified: only a full run (segport exports run NAME --full) puts everything back"
            )
        # The run's pre-flight first (creating nothing): refused credentials, an unreachable platform
        # or a missing audience fail verify as they fail a run, even with nobody delivered yet.
        prepare(writer, _gate(request, limits.max_concurrency), policy, report.retried)
        people = list(store.delivered_people(export.id))
        mapper = Mapper(export.email_field, {**export.mapping, **destination.extra_fields(options)})
        reader = _Reader(writer, _gate(request, limits.max_concurrency), policy, report)
        states = reader.read([p.email for p in people], size=limits.batch_size, concurrency=limits.max_concurrency)
        audience = destination.audience(options)
        compared = _Comparison(mapper, frozenset(export.segments), frozenset(export.mapping))
        for person in people:
            compared.add(person, states.get(person.email), report)
        _mark_known(report, store.ledger_entries(request.connection.id, audience, [p.email for p in people]))
        updates = [LedgerUpdate(e, s.status) for e, s in sorted(states.items())]
        updates += [LedgerUpdate(p.email, MISSING) for p in report.missing]
        with store.transaction():
            store.save_ledger(request.connection.id, audience, updates)
    report.checked = len(people)
    report.requests = counter.value
    return report


def _mark_known(report: DriftReport, ledger: Mapping[str, LedgerEntry]) -> None:
    """Mark the status changes and absences the sync ledger already held as known."""

    def known(person: PersonDrift, status: str) -> PersonDrift:
        entry = ledger.get(person.email)
        return dataclasses.replace(person, known=entry is not None and entry.status == status)

    report.status_changes = [known(p, p.status or "") for p in report.status_changes]
    report.missing = [known(p, MISSING) for p in report.missing]


class _Reader:
    """Reads people at the platform in chunks, concurrently, through the credential's governor."""

    def __init__(self, writer: BatchWriter, gate: Gate, policy: RetryPolicy, report: DriftReport) -> None:
        self.writer, self.gate, self.policy, self.report = writer, gate, policy, report

    def read(self, emails: Sequence[str], *, size: int, concurrency: int) -> dict[str, MemberState]:
        """Return address -> state for every address the platform knows."""
        unique = sorted(set(emails))
        chunks = [unique[i : i + size] for i in range(0, len(unique), size)]
        found: dict[str, MemberState] = {}
        if not chunks:
            return found
        with ThreadPoolExecutor(min(concurrency, len(chunks)), thread_name_prefix="segport-verify") as pool:
            for answer in pool.map(self._chunk, chunks):
                found.update(answer)
        return found

    def _chunk(self, emails: Sequence[str]) -> Mapping[str, MemberState]:
        attempt = 0
        while True:
            try:
                with self.gate:
                    return self.writer.read_members(emails)
            except TRANSIENT as exc:
                if attempt + 1 >= self.policy.attempts:
                    raise
                self.report.retried()
                retry_after = exc.retry_after if isinstance(exc, RetryableDestinationError) else None
                time.sleep(self.policy.delay(attempt, retry_after))
                attempt += 1


class _Comparison:
    """Compares one delivered person with their state at the platform and files the finding."""

    def __init__(self, mapper: Mapper, segments: frozenset[str], mapped: frozenset[str]) -> None:
        self.mapper, self.segments, self.mapped = mapper, segments, mapped

    def add(self, person: DeliveredPerson, state: MemberState | None, report: DriftReport) -> None:
        delivered = frozenset(json.loads(person.markers)) & self.segments
        same_mapping = person.mapping == self.mapper.fingerprint and person.digest != RESEND_DIGEST
        fields: dict[str, object] | None = None  # the fields delivered, when the profile still maps to them
        if not delivered and person.seq is None:  # an exit: only its markers are still segport's
            fields = {}
        elif same_mapping and person.attrs is not None:
            mapped = self.mapper.map(json.loads(person.attrs))
            if not isinstance(mapped, str) and mapped.digest == person.digest and mapped.email == person.email:
                fields = mapped.fields
        if state is None:
            report.missing.append(PersonDrift(person.key, person.email, missing=True))
            return
        if not state.subscribed:
            report.status_changes.append(PersonDrift(person.key, person.email, status=state.status))
            return
        report.pending += fields is None
        lost, extra = delivered - state.markers, (state.markers & self.segments) - delivered
        changed = {
            name: (value, state.fields[name])
            for name, value in sorted((fields or {}).items())
            if name in self.mapped and name in state.fields and not same_value(value, state.fields[name])
        }
        if not (lost or extra or changed):
            report.in_sync += fields is not None
            return
        repair = None
        if same_mapping:  # a person of another data matching is the next run's to send in full
            record = Record(
                key=person.key,
                email=person.email,
                fields=fields if changed and fields is not None else {},
                segments=delivered,
                add=lost,
                remove=extra,
                upsert=bool(changed),
                new=False,
            )
            repair = Send(record=record, digest=person.digest, markers=delivered, seq=person.seq)
        report.drifted.append(
            PersonDrift(
                person.key, person.email, markers_missing=lost, markers_extra=extra, fields=changed, repair=repair
            )
        )


def same_value(delivered: object, found: object) -> bool:
    """Whether a field's value at the platform is the value delivered (text and numbers as the platforms echo them)."""
    left, right = _text(delivered), _text(found)
    if left == right:
        return True
    try:
        a, b = float(left), float(right)
    except ValueError:
        return False
    return math.isfinite(a) and a == b


def _text(value: object) -> str:
    return "" if value is None else str(value).strip()


def examples(people: Iterable[PersonDrift]) -> list[PersonDrift]:
    """Return the first people of a list, as many as the human report shows."""
    return list(people)[:EXAMPLES]
