"""The dispatcher: sends batches through a writer with bounded concurrency and retries.

At most ``max_concurrency`` batches are in flight per credential (the credential's governor, see
:mod:`segport.governor`: process-wide by default, shared through Redis across workers). Transient
failures (timeouts, resets, 429, 5xx) are retried with exponential backoff and full jitter, honouring
Retry-After; permanent rejections never are. A batch the platform refuses for its content is split in
halves until the offending records stand alone. A batch that became a long platform job
(:class:`segport.PendingJob`) is polled without its governor slot but keeps its place in the window.

The dispatcher is generic over what a batch carries: any payload with a ``record`` (the planner's
``Send`` step, which also holds the sync state to store once the record is acknowledged). The writer
sees the records; each :class:`Delivery` hands the payloads back with one final outcome per record.
"""

from __future__ import annotations

import random
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Callable, Generator, Generic, Iterable, Iterator, Protocol, Sequence, TypeVar

from ..contract import BatchWriter, Outcome, OutcomeStatus, Record
from ..errors import BadBatchError, PluginContractError, RetryableDestinationError
from ..governor import Gate, governor
from ..http import TRANSPORT_ERRORS
from ..pending import complete_batch

# What a batch (or a pre-flight) may be tried again after: the platform said so, or the transport failed.
TRANSIENT: tuple[type[Exception], ...] = (RetryableDestinationError, *TRANSPORT_ERRORS)

__all__ = ["TRANSIENT", "Delivery", "Dispatcher", "Gate", "Payload", "RetryPolicy", "governor"]


class Payload(Protocol):
    """What a batch carries per record: the record itself, and whatever its commit needs."""

    @property
    def record(self) -> Record:
        """The record the writer sends."""
        ...


P = TypeVar("P", bound=Payload)


@dataclass(frozen=True)
class RetryPolicy:
    """How transient failures are retried: ``attempts`` tries in all, waits capped at ``cap`` s."""

    attempts: int = 8  # a Mailchimp batch spans up to ~5 calls, each of which may fail transiently
    base: float = 0.5
    cap: float = 60.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before try ``attempt + 1`` (full jitter; Retry-After is a floor)."""
        wait_s = random.uniform(0, min(self.cap, self.base * 2.0**attempt))
        if retry_after is not None:
            wait_s = max(wait_s, min(retry_after, self.cap * 5))
        return wait_s


@dataclass
class Delivery(Generic[P]):
    """What became of one batch: its payloads, one final outcome per record (by key), and what it cost."""

    payloads: Sequence[P]
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    requests: int = 0
    retries: int = 0

    def settled(self) -> Iterator[tuple[P, Outcome]]:
        """Each payload with its record's final outcome, in the batch's order."""
        outcomes = self.outcomes
        for payload in self.payloads:
            yield payload, outcomes[payload.record.key]


class Dispatcher(Generic[P]):
    """Drives ``writer`` over batches; results come back to the calling thread, in completion order."""

    def __init__(
        self,
        writer: BatchWriter,
        *,
        concurrency: int,
        gate: Gate,
        policy: RetryPolicy,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.writer = writer
        self.concurrency = concurrency
        self.gate = gate
        self.policy = policy
        self._stop = threading.Event()
        self.sleep = sleep or self._stop.wait  # a stopped dispatcher wakes its retry waits
        # Batches sent but not yet committed by the consumer: at most ``concurrency``, so a crash
        # re-sends no more than the batches that were in flight.
        self._window = threading.Semaphore(concurrency)
        # Deliveries that completed but were never yielded (the consumer stopped early): what else
        # reached the platform, for the consumer's account of a failed commit.
        self.unconsumed: list[Delivery[P]] = []

    def run(self, batches: Iterable[Sequence[P]]) -> Generator[Delivery[P], None, None]:
        """Send every batch; yield each :class:`Delivery` as it completes.

        A fatal error (auth, unknown audience, a plugin bug) stops new sends, lets in-flight
        batches finish and be yielded, then propagates. When the consumer stops early (Ctrl-C,
        a failed commit), in-flight batches stop retrying and the call returns promptly.
        """
        unyielded: set[Future[Delivery[P] | None]] = set()  # submitted, not handed to the consumer yet
        try:
            yield from self._run(batches, unyielded)
        finally:
            self.unconsumed = [d for d in map(_result, unyielded) if d is not None]

    def _run(self, batches: Iterable[Sequence[P]], unyielded: set[Future[Delivery[P] | None]]) -> Iterator[Delivery[P]]:
        failure: BaseException | None = None
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="segport-send") as pool:
            try:
                pending: set[Future[Delivery[P] | None]] = set()
                source = iter(batches)
                exhausted = False
                while pending or not exhausted:
                    while not exhausted and failure is None and len(pending) < self.concurrency * 2:
                        batch = next(source, None)
                        if batch is None:
                            exhausted = True
                        else:
                            future = pool.submit(self.deliver, batch)
                            pending.add(future)
                            unyielded.add(future)
                    if not pending:
                        break
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        unyielded.discard(future)
                        try:
                            delivery = future.result()
                        except BaseException as exc:  # re-raised once the in-flight work is in
                            self._window.release()
                            failure = failure or exc
                            self._stop.set()
                            continue
                        if delivery is None:  # stopped before it was sent
                            continue
                        yield delivery  # the consumer commits it before control comes back
                        self._window.release()
                    exhausted = exhausted or failure is not None
            finally:  # wake retry waits before the pool waits for its threads
                self._stop.set()
        if failure is not None:
            raise failure

    def deliver(self, batch: Sequence[P]) -> Delivery[P] | None:
        """Send one batch until every record has a final outcome (None: stopped before sending).

        Waits for room in the window of uncommitted batches first; on any error the caller
        releases that room.
        """
        while not self._window.acquire(timeout=0.05):
            if self._stop.is_set():
                return None
        if self._stop.is_set():
            self._window.release()
            return None
        delivery = Delivery(batch)
        self._send([payload.record for payload in batch], delivery)
        return delivery

    def _send(self, records: list[Record], delivery: Delivery[P]) -> None:
        attempt = 0
        while records:
            try:
                with self.gate:
                    result = self.writer.write_batch(records)
                if result.pending is not None:  # a platform job: polled holding no slot, still in the window
                    result = complete_batch(result, gate=self.gate, sleep=self.sleep, stopped=self._stop.is_set)
            except TRANSIENT as exc:
                delivery.requests += 1
                if isinstance(exc, RetryableDestinationError):
                    retry_after, reason = exc.retry_after, str(exc)
                else:
                    retry_after, reason = None, f"network error: {type(exc).__name__}"
                if not self._may_retry(attempt):
                    for record in records:
                        delivery.outcomes[record.key] = Outcome(
                            record.key, OutcomeStatus.FAILED, f"{reason} (after {attempt + 1} tries)"
                        )
                    return
                delivery.retries += 1
                self.sleep(self.policy.delay(attempt, retry_after))
                attempt += 1
                continue
            except BadBatchError as exc:
                delivery.requests += 1
                if len(records) == 1:
                    delivery.outcomes[records[0].key] = Outcome.rejected(records[0].key, exc.message)
                    return
                middle = len(records) // 2
                self._send(records[:middle], delivery)
                self._send(records[middle:], delivery)
                return
            delivery.requests += result.requests
            records = self._settle(records, result.outcomes, delivery)
            if records:
                if not self._may_retry(attempt):
                    for record in records:
                        previous = delivery.outcomes[record.key]
                        delivery.outcomes[record.key] = Outcome(record.key, OutcomeStatus.FAILED, previous.reason)
                    return
                delivery.retries += 1
                self.sleep(self.policy.delay(attempt))
                attempt += 1

    def _may_retry(self, attempt: int) -> bool:
        return attempt + 1 < self.policy.attempts and not self._stop.is_set()

    def _settle(self, records: list[Record], outcomes: Sequence[Outcome], delivery: Delivery[P]) -> list[Record]:
        """Record final outcomes; return the records to retry. Checks one outcome per record."""
        by_key = {o.key: o for o in outcomes}
        keys = [r.key for r in records]
        if len(outcomes) != len(records) or set(by_key) != set(keys):
            raise PluginContractError(
                f"the destination writer returned {len(outcomes)} outcomes for {len(records)} records "
                "(a writer must return exactly one outcome per record: fix the plugin)"
            )
        retry: list[Record] = []
        for record in records:
            outcome = by_key[record.key]
            delivery.outcomes[record.key] = outcome
            if outcome.status is OutcomeStatus.RETRYABLE:
                retry.append(record)
        return retry


def _result(future: Future[Delivery[P] | None]) -> Delivery[P] | None:
    """Return the delivery of a finished future (None: not finished, stopped before sending, or failed)."""
    if not future.done() or future.cancelled() or future.exception() is not None:
        return None
    return future.result()
