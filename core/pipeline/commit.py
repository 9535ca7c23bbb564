"""The commit of one batch: its outcomes, sync state and the run's figures in one transaction.

What a run acknowledges is stored batch by batch, so a crashed run, run again, resumes where it
stopped. Every record that did not go through as planned (rejected, failed after every retry,
skipped by the platform or as a duplicate) also goes to the run's reject file (JSONL) with its
reason, written before the transaction: a line may name a record whose commit then failed, never the
reverse. One line per person per reason: a record refused again with the line (address, status,
reason) a kept earlier run of the export wrote is counted and stored as an outcome naming that run
(``reported_in``), not written again. A record that failed for good is marked in the sync state so
the next run sends it again, whatever mode this run used.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterable, Iterator, Sequence

import pluggy

from ..contract import BatchResult, Outcome, OutcomeStatus
from ..errors import WorkspaceError
from ..models import Export, Run
from ..plugins import notify
from ..private import make_folder, open_append
from ..store.interface import LedgerUpdate, OutcomeRow, StateRow, Store
from .batcher import Unsent
from .dispatcher import Delivery
from .planner import Remember, Send, markers_json

__all__ = ["BatchCommit", "RejectLine", "RejectLog"]


@dataclass(frozen=True, slots=True)
class RejectLine:
    """One record that did not go through as planned, as the reject file keeps it."""

    key: str
    email: str
    status: OutcomeStatus
    reason: str | None

    def to_json(self) -> str:
        """Return the line's JSON object: key, email, status, reason."""
        line = {"key": self.key, "email": self.email, "status": self.status.value, "reason": self.reason}
        return json.dumps(line, ensure_ascii=False)

    def row(self) -> OutcomeRow:
        """Return the line as the store keeps it (key, email, status, reason)."""
        return OutcomeRow(self.key, self.email, self.status.value, self.reason)

    def outcome(self) -> Outcome:
        """Return the record's outcome, as the ``segport_on_reject`` hook receives it."""
        return Outcome(self.key, self.status, self.reason)


class RejectLog:
    """The run's reject file (JSONL: key, email, status, reason), created on the first reject (0600, folder 0700)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None

    def write(self, lines: Sequence[RejectLine]) -> None:
        """Append ``lines`` and flush them to the file."""
        if not lines:
            return
        try:
            if self._file is None:
                make_folder(self.path.parent)
                self._file = os.fdopen(open_append(self.path), "a", encoding="utf-8")
            self._file.writelines(line.to_json() + "\n" for line in lines)
            self._file.flush()
        except OSError as exc:
            raise WorkspaceError(
                f"cannot write the reject file {self.path} ({exc.strerror or exc}): check free disk space "
                f"and permissions of {self.path.parent}; what was sent before is recorded"
            ) from None

    def __enter__(self) -> RejectLog:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()


class Refusals:
    """How many records were refused, by reason; each record's own address is masked so reasons group."""

    def __init__(self) -> None:
        self.reasons: Counter[str] = Counter()

    def add(self, email: str, reason: str | None) -> None:
        """Count one refused record."""
        text = reason or "no reason given"
        self.reasons[re.sub(re.escape(email), "<address>", text, flags=re.IGNORECASE) if email else text] += 1

    @property
    def total(self) -> int:
        """Return how many records were refused."""
        return sum(self.reasons.values())

    def most_common(self) -> str:
        """Return the most common reason, with how many records it refused when it is not every one."""
        reason, seen = self.reasons.most_common(1)[0]
        return reason if seen == self.total else f"{reason} ({seen:,} of them)"


def all_refused(run: Run, commit: BatchCommit) -> str:
    """Say why a run that delivered nothing failed: who refused how many records (segport or the platform), and why."""
    before, platform = commit.refused_before, commit.refused_by_platform
    parts = []
    if platform.total:
        parts.append(f"the platform refused {platform.total:,} after sending (most common: {platform.most_common()})")
    if before.total:
        parts.append(f"segport refused {before.total:,} before sending (most common: {before.most_common()})")
    where = f"every reason: segport runs rejects {run.id}"
    if before.total > platform.total:  # segport's own rejects dominate: the data matching fits the profiles badly
        where = f"check the export's data matching (segport exports show {run.export}); {where}"
    total = run.counts["rejected"]
    return f"all {total:,} selected profiles were refused: {'; '.join(parts)}; {where}"


class BatchCommit:
    """Commits the batches of one run, each with the unsent steps planned since the last commit."""

    def __init__(
        self,
        *,
        store: Store,
        pm: pluggy.PluginManager,
        export: Export,
        run: Run,
        reject_log: RejectLog,
        mapping: int,
        ledger: tuple[int, str] | None = None,
    ) -> None:
        self.store = store
        self.ledger = ledger  # (connection id, audience): where the platform statuses outcomes report go
        self.pm = pm
        self.export = export
        self.run = run
        self.reject_log = reject_log
        self.mapping = mapping  # the data matching's fingerprint, stored with the sync state
        self.delivered = 0  # records the platform acknowledged (created, updated, unchanged, skipped)
        self.first_failure: str | None = None  # the reason of the first record that failed for good
        self.refused_before = Refusals()  # records segport refused before sending (invalid address, duplicate)
        self.refused_by_platform = Refusals()  # records the platform refused after they were sent
        self.unrecorded: Counter[str] = Counter()  # outcomes that reached the platform but not the store

    def __call__(self, delivery: Delivery[Send] | None, unsent: Sequence[Unsent]) -> None:
        """Store one batch's outcomes and sync state (and ``unsent``) in one transaction; log its rejects.

        When the transaction fails, the run record keeps the batch's figures (it did reach the
        platform) and :attr:`unrecorded` counts its outcomes.
        """
        run, mapping = self.run, self.mapping
        outcome_rows: list[OutcomeRow] = []
        state_rows: list[StateRow] = []
        lost: list[RejectLine] = []
        outcomes: list[Outcome] = []
        reported: list[LedgerUpdate] = []
        resend: list[str] = []  # keys of records that failed for good: the next run sends them again
        if delivery is not None:
            for send, outcome in delivery.settled():
                record, status = send.record, outcome.status
                outcomes.append(outcome)
                if outcome.platform_status is not None or outcome.archived:
                    reported.append(LedgerUpdate(record.email, outcome.platform_status, outcome.archived))
                outcome_rows.append(OutcomeRow(record.key, record.email, status.value, outcome.reason))
                if status.delivered:
                    markers = markers_json(send.markers)
                    state_rows.append(StateRow(record.key, record.email, send.digest, markers, send.seq, mapping))
                elif status is OutcomeStatus.FAILED:
                    resend.append(record.key)
                    self.first_failure = self.first_failure or outcome.reason
                elif status is OutcomeStatus.REJECTED:
                    self.refused_by_platform.add(record.email, outcome.reason)
                if status not in _WENT_THROUGH:
                    lost.append(RejectLine(key=record.key, email=record.email, status=status, reason=outcome.reason))
            self.count(delivery)
        for step in unsent:
            if isinstance(step, Remember):
                markers = markers_json(step.markers)
                state_rows.append(StateRow(step.key, step.email, step.digest, markers, step.seq, mapping))
                continue
            outcome_rows.append(OutcomeRow(step.key, step.email, step.status, step.reason))
            run.counts[step.status] += 1
            if step.status == "rejected":
                self.refused_before.add(step.email, step.reason)
            status = OutcomeStatus(step.status)
            lost.append(RejectLine(key=step.key, email=step.email, status=status, reason=step.reason))
        try:
            earlier = self.already_reported(lost)  # one line per person per reason: these are in an earlier file
            new_lines = [line for line in lost if line.key not in earlier]
            self.reject_log.write(new_lines)
            if new_lines:
                run.reject_file = str(self.reject_log.path)
            with self.store.transaction():
                self.store.save_outcomes(run.id, outcome_rows, earlier)
                self.store.save_reject_lines(self.export.id, run.id, [line.row() for line in new_lines])
                self.store.save_sync_state(self.export.id, state_rows)
                if self.ledger is not None:
                    self.store.save_ledger(*self.ledger, reported)
                self.store.mark_resend(self.export.id, resend)
                self.store.update_run(run)
        except BaseException:
            if delivery is not None:
                self.unrecorded.update(_answered(outcomes))
            raise
        if delivery is not None and outcomes:
            result = BatchResult(outcomes, delivery.requests)
            notify(self.pm.hook.segport_after_batch, run=run, export=self.export, result=result)
        for line in lost:
            if line.status is OutcomeStatus.SKIPPED:
                continue  # went to the platform and was left as it was there: not a reject
            notify(
                self.pm.hook.segport_on_reject, run=run, export=self.export, outcome=line.outcome(), email=line.email
            )

    def already_reported(self, lost: Sequence[RejectLine]) -> dict[str, int]:
        """Return profile key -> run id for the ``lost`` records whose line a kept earlier run of the export wrote."""
        if not lost:
            return {}
        found = self.store.reported_rejects(self.export.id, [line.key for line in lost])
        earlier = ((line.key, found.get((line.key, line.email, line.status.value, line.reason))) for line in lost)
        return {key: run_id for key, run_id in earlier if run_id is not None and run_id != self.run.id}

    def count(self, delivery: Delivery[Send]) -> None:
        """Add what ``delivery`` did at the platform to the run's figures (not stored by itself)."""
        run = self.run
        for _, outcome in delivery.settled():
            run.counts[outcome.status.value] = run.counts.get(outcome.status.value, 0) + 1
            self.delivered += outcome.status.delivered
        run.requests += delivery.requests
        run.retries += delivery.retries

    def count_unrecorded(self, delivery: Delivery[Send]) -> None:
        """Count a delivery that reached the platform after the run stopped committing (batches in flight)."""
        self.count(delivery)
        self.unrecorded.update(_answered(outcome for _, outcome in delivery.settled()))


def _answered(outcomes: Iterable[Outcome]) -> Iterator[str]:
    """Return the statuses of the outcomes the platform answered for (a failed record may not have landed)."""
    return (outcome.status.value for outcome in outcomes if outcome.status is not OutcomeStatus.FAILED)


# Outcomes that are no news for the reject file: the platform took the record as planned.
_WENT_THROUGH = frozenset({OutcomeStatus.CREATED, OutcomeStatus.UPDATED, OutcomeStatus.UNCHANGED})
