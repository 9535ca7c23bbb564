"""The kit's concurrency check: batches written from several threads at once share no mutable state.

The engine calls ``write_batch`` on one writer from several threads (up to the destination's
``max_concurrency``). The contract (docs/plugins.md, "Concurrent batches") allows a writer to keep
what ``prepare()`` found, read-only, and facts learned mid-run in a :class:`segport.Learned`; nothing
else a batch does may change the writer. :class:`ConcurrencyChecks` is a base of
:class:`~segport.testing.DestinationConformance`, so every plugin's conformance run includes it.
"""

from __future__ import annotations

import copy
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Sequence

from ..contract import BatchWriter, Destination, Outcome, Record
from ..learned import Learned
from ..pending import complete_batch

if TYPE_CHECKING:
    from .double import PlatformDouble, PlatformMember

__all__ = ["ConcurrencyChecks", "writer_state"]

BATCHES = 4  # written at once, at most the destination's max_concurrency
PEOPLE = 6  # per batch: enough that a platform's bulk path for known people is taken on the second round
_PLAIN = (str, bytes, int, float, bool, type(None), tuple, frozenset, list, dict, set)


def _write(writer: BatchWriter, together: threading.Barrier, records: list[Record]) -> list[Outcome]:
    together.wait()
    return complete_batch(writer.write_batch(records)).outcomes


def writer_state(writer: BatchWriter) -> dict[str, Any]:
    """Return the writer's attributes as a comparable snapshot.

    Plain data is taken by value (deep-copied), any other object by identity; :class:`segport.Learned`
    maps are left out (they may grow mid-run).
    """
    state: dict[str, Any] = {}
    for name, value in vars(writer).items():
        if isinstance(value, Learned):
            continue
        if isinstance(value, _PLAIN):
            try:
                state[name] = copy.deepcopy(value)
                continue
            except Exception:  # something in it cannot be copied: compare it by identity
                pass
        state[name] = ("the object", id(value))
    return state


class ConcurrencyChecks:
    """The concurrency check of the conformance kit (its fixtures and helpers are DestinationConformance's)."""

    if TYPE_CHECKING:  # DestinationConformance's, which subclasses this
        segments: ClassVar[tuple[str, str]]

        def record(self, i: int, *, segments: set[str] | frozenset[str]) -> Record:
            """Return a new kit person entering ``segments`` (DestinationKit's)."""
            ...

        def writer(
            self,
            destination: Destination,
            config: Mapping[str, Any],
            options: Mapping[str, Any],
            *,
            dry_run: bool = False,
        ) -> BatchWriter:
            """Return a prepared writer on an authenticated session (DestinationKit's)."""
            ...

        def check_outcomes(self, records: Sequence[Record], outcomes: Sequence[Outcome]) -> dict[str, Outcome]:
            """Check one outcome per record and return the outcomes by key (DestinationKit's)."""
            ...

        def members_by_email(self, platform: PlatformDouble) -> dict[str, PlatformMember]:
            """Return the platform's people by normalised email (DestinationKit's)."""
            ...

        def assert_member(
            self,
            member: PlatformMember,
            *,
            fields: Mapping[str, Any] | None = None,
            markers: set[str] | frozenset[str] | None = None,
            status: str | None = None,
        ) -> None:
            """Assert the person holds ``fields``, ``markers`` and ``status`` (DestinationKit's)."""
            ...

    def test_concurrent_batches_share_no_state(
        self, destination: Destination, config: dict[str, Any], options: dict[str, Any], platform: PlatformDouble
    ) -> None:
        """Check that batches written at once from several threads share no writer state.

        Batches written at once (new people, then the same people again) each get their own outcomes and
        land exactly; no batch changes the writer's attributes (a :class:`segport.Learned` may grow): what
        ``prepare()`` set is read-only, per-batch state is local.
        """
        parallel = max(1, min(BATCHES, destination.spec().limits.max_concurrency))
        writer = self.writer(destination, config, options)
        before = writer_state(writer)
        batches = [
            [self.record(100 + b * PEOPLE + i, segments={self.segments[b % 2]}) for i in range(PEOPLE)]
            for b in range(parallel)
        ]
        for _ in range(2):  # new people, then known people (a platform may take another path for them)
            together = threading.Barrier(parallel, timeout=30)  # every batch starts at once
            with ThreadPoolExecutor(parallel, thread_name_prefix="segport-kit") as pool:
                results = list(pool.map(partial(_write, writer, together), batches))
            for records, outcomes in zip(batches, results, strict=True):
                found = self.check_outcomes(records, outcomes)
                undelivered = {k: o for k, o in found.items() if not o.status.delivered}
                assert not undelivered, f"batches written at once were not delivered: {undelivered}"
        members = self.members_by_email(platform)
        for b, records in enumerate(batches):
            for record in records:
                assert record.email in members, f"{record.email}, written in a concurrent batch, is not at the platform"
                self.assert_member(members[record.email], fields=record.fields, markers={self.segments[b % 2]})
        after = writer_state(writer)
        changed = sorted(name for name in set(before) | set(after) if before.get(name) != after.get(name))
        assert not changed, (
            f"write_batch changed the writer's {', '.join(changed)} while batches ran at once: set it in prepare() "
            "and leave it, keep per-batch state in locals, and keep a fact learned mid-run in a segport.Learned"
        )
