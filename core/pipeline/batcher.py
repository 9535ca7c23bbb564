"""The batcher: cuts a run's plan into batches of sends, one kind of send per batch.

Steps decided without a request (rejects, sync-state-only changes) are collected on the side and
committed with the next batch, or on their own when many pile up between two batches.
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator

from ..errors import RunError
from .planner import PlanCounts, Reject, Remember, Send, Step, Unchanged

UNSENT_CHUNK = 5000  # steps decided without a request, committed together at most this many at a time

Unsent = Reject | Remember  # a step decided without a request

__all__ = ["UNSENT_CHUNK", "Unsent", "batches"]


def batches(
    steps: Iterable[Step],
    *,
    counts: PlanCounts,
    size: int,
    unsent: list[Unsent],
    flush: Callable[[list[Unsent]], None],
) -> Iterator[list[Send]]:
    """Cut the plan's sends into batches of ``size``; count every step; collect the unsent ones.

    A batch holds one kind of send: new people, updates of known people, or marker changes only.
    Platforms serve each kind with other calls (Mailchimp: batch create, a /batches job of
    updates, tag calls), so a delta run fills each call instead of sending half-empty ones.
    ``unsent`` normally rides with the next batch's commit; ``flush`` empties it when it grows
    large between batches (a plan of a million rejects holds at most a chunk of them).
    """
    lanes: dict[tuple[bool, bool], list[Send]] = {}
    for step in steps:
        counts.count(step)
        if isinstance(step, Send):
            kind = (step.record.upsert, step.record.upsert and step.record.new)
            batch = lanes.setdefault(kind, [])
            batch.append(step)
            if len(batch) >= size:
                yield batch
                lanes[kind] = []
        elif isinstance(step, (Reject, Remember)):
            unsent.append(step)
            if len(unsent) >= UNSENT_CHUNK:
                flush(unsent)
        elif not isinstance(step, Unchanged):  # pragma: no cover - planner contract
            raise RunError(f"unexpected plan step {step!r}")
    yield from (batch for batch in lanes.values() if batch)
