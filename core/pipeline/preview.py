"""What a dry run shows besides its counts: what the pre-flight would create, and per-record actions.

The caller hands a :class:`Preview` to the run (``RunRequest.preview``); a dry run fills it. Records
are listed up to ``limit`` of each action, rejects and exits first (then skips, creates, updates;
by plan order within an action), so a few rejects among many updates are seen; all are counted.
Old field values are not known: the sync ledger keeps a digest of what was delivered, not the
values, so an update lists every mapped field it resends with its new value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, TypedDict

from .planner import Reject, Remember, Send, Step, Unchanged, send_action

DEFAULT_SHOWN = 20  # records of each action ``--show-records`` lists without a number
ACTIONS = ("reject", "exit", "skip", "create", "update")  # the order records are listed in


class FieldChange(TypedDict):
    """A mapped field a record sends: the value before (None: not known) and the value sent."""

    old: object
    new: object


class RecordAction(TypedDict):
    """One record as ``--show-records`` lists it (the JSON form's ``records`` items)."""

    action: str  # create, update, exit, reject, skip
    key: str
    email: str
    fields: dict[str, FieldChange]
    old_known: bool
    markers_added: list[str]
    markers_removed: list[str]
    reason: str | None


@dataclass
class Preview:
    """Filled by a dry run: platform objects the pre-flight would create, and a sample of records' actions.

    :param limit: how many records of each action to list (0: none, only counts).
    """

    limit: int = 0
    would_create: list[str] = field(default_factory=list)
    sampled: dict[str, list[RecordAction]] = field(default_factory=dict)  # action -> its first ``limit`` records
    totals: dict[str, int] = field(default_factory=dict)  # action -> records with that action

    @property
    def records(self) -> list[RecordAction]:
        """Return the listed records: up to ``limit`` of each action, in the order of :data:`ACTIONS`."""
        return [item for action in ACTIONS for item in self.sampled.get(action, [])]

    @property
    def listed_of(self) -> int:
        """Return the count of records with an action (created, updated, exits, rejected, skipped)."""
        return sum(self.totals.values())

    def not_shown(self) -> dict[str, int]:
        """Return action -> records of that action not listed, for the actions with some left out."""
        left = {action: self.totals.get(action, 0) - len(self.sampled.get(action, [])) for action in ACTIONS}
        return {action: count for action, count in left.items() if count > 0}

    def watch(self, steps: Iterator[Step]) -> Iterator[Step]:
        """Yield ``steps`` unchanged, noting the first ``limit`` records of each action."""
        for step in steps:
            if not isinstance(step, (Unchanged, Remember)):
                item = record_action(step)
                action = item["action"]
                self.totals[action] = self.totals.get(action, 0) + 1
                sample = self.sampled.setdefault(action, [])
                if len(sample) < self.limit:
                    sample.append(item)
            yield step


def record_action(step: Send | Reject) -> RecordAction:
    """Describe one planned step as ``--show-records`` lists it (JSON-ready)."""
    if isinstance(step, Reject):
        action = "skip" if step.status == "skipped" else "reject"
        return {
            "action": action,
            "key": step.key,
            "email": step.email,
            "fields": {},
            "old_known": False,
            "markers_added": [],
            "markers_removed": [],
            "reason": step.reason,
        }
    record = step.record
    action = send_action(step)
    fields: dict[str, FieldChange] = (
        {name: FieldChange(old=None, new=value) for name, value in sorted(record.fields.items())}
        if record.upsert
        else {}
    )
    return {
        "action": action,
        "key": record.key,
        "email": record.email,
        "fields": fields,
        "old_known": False,  # the sync ledger holds a digest of what was delivered, never the values
        "markers_added": sorted(record.add),
        "markers_removed": sorted(record.remove),
        "reason": None,
    }
