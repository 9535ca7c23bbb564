"""Long platform jobs (segport.PendingJob): polled by the engine without a governor slot, counted exactly,
retried and committed like any batch, given up when the run stops."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Sequence

import pytest

from segport import BatchResult, BatchWriter, Outcome, OutcomeStatus, PendingJob, Record, RunContext, complete_batch
from segport.pipeline.dispatcher import Dispatcher, RetryPolicy

NO_WAIT = RetryPolicy(attempts=3, base=0.0, cap=0.0)


class Probe:
    """A batch gate (one slot) that remembers how many slots are held."""

    def __init__(self) -> None:
        self.slot = threading.BoundedSemaphore(1)
        self.held = 0

    def __enter__(self) -> Probe:
        self.slot.acquire()
        self.held += 1
        return self

    def __exit__(self, *exc: object) -> None:
        self.held -= 1
        self.slot.release()


class Job(PendingJob):
    """Finishes after ``polls`` polls; each poll is one request; the result retries ``retry`` once."""

    def __init__(self, writer: JobWriter, records: Sequence[Record], polls: int) -> None:
        self.writer, self.records, self.left, self.polls = writer, records, polls, 0

    def next_poll(self) -> float | None:
        return 0.0 if self.left else None

    def poll(self) -> None:
        self.writer.poll_gate.append(self.writer.gate.held if self.writer.gate else -1)
        self.writer.while_polling(self)
        self.left -= 1
        self.polls += 1

    def result(self) -> BatchResult:
        self.writer.result_gate.append(self.writer.gate.held if self.writer.gate else -1)
        if self.left:  # given up before the job finished
            return BatchResult([Outcome.retryable(r.key, "job given up") for r in self.records], self.polls + 1)
        outcomes = []
        for record in self.records:
            if record.key in self.writer.retry:
                self.writer.retry.discard(record.key)
                outcomes.append(Outcome.retryable(record.key, "not this time"))
            else:
                outcomes.append(Outcome(record.key, OutcomeStatus.CREATED))
        return BatchResult(outcomes, requests=self.polls + 1)  # the polls and one download


class JobWriter(BatchWriter):
    """Every batch becomes a job of ``polls`` polls (2 requests to start it)."""

    def __init__(self, polls: int = 3, gate: Probe | None = None) -> None:
        super().__init__(None, {}, RunContext("jobs", {}, [], []))  # type: ignore[arg-type]
        self.polls, self.gate = polls, gate
        self.retry: set[str] = set()
        self.poll_gate: list[int] = []
        self.result_gate: list[int] = []
        self.writes: list[list[str]] = []
        self.write_lock = threading.Lock()

    def while_polling(self, job: Job) -> None:
        """A hook for tests: runs inside each poll."""

    def write_batch(self, records: Sequence[Record]) -> BatchResult:
        with self.write_lock:
            self.writes.append([r.key for r in records])
        return BatchResult([], requests=2, pending=Job(self, records, self.polls))


@dataclass(frozen=True)
class Item:
    """A dispatcher payload: the record, nothing else to commit."""

    record: Record


def records(*keys: str) -> list[Record]:
    return [Record(key, f"{key}@example.com", {}) for key in keys]


def batch(*keys: str) -> list[Item]:
    return [Item(record) for record in records(*keys)]


def test_a_job_is_polled_without_the_batch_slot_and_its_result_taken_with_it() -> None:
    gate = Probe()
    writer = JobWriter(polls=3, gate=gate)
    dispatcher = Dispatcher[Item](writer, concurrency=1, gate=gate, policy=NO_WAIT)

    (delivery,) = dispatcher.run([batch("a", "b")])

    assert writer.poll_gate == [0, 0, 0]
    assert writer.result_gate == [1]
    assert {k: o.status for k, o in delivery.outcomes.items()} == dict.fromkeys("ab", OutcomeStatus.CREATED)
    assert (delivery.requests, delivery.retries) == (2 + 3 + 1, 0)


def test_another_batch_takes_the_slot_while_a_job_is_pending() -> None:
    gate = Probe()
    second_written = threading.Event()

    class Waiting(JobWriter):
        def while_polling(self, job: Job) -> None:
            if job.records[0].key == "a":  # the first job waits (holding no slot) for the second write
                assert second_written.wait(10), "the second batch never got the slot the pending job left free"

        def write_batch(self, records: Sequence[Record]) -> BatchResult:
            if records[0].key == "b":
                second_written.set()
            return super().write_batch(records)

    writer = Waiting(polls=1, gate=gate)
    deliveries = list(Dispatcher[Item](writer, concurrency=2, gate=gate, policy=NO_WAIT).run([batch("a"), batch("b")]))

    assert sorted(k for d in deliveries for k in d.outcomes) == ["a", "b"]
    assert writer.writes[0] == ["a"]


def test_retryable_outcomes_of_a_job_are_retried_and_every_request_counted() -> None:
    writer = JobWriter(polls=2)
    writer.retry = {"b"}

    (delivery,) = Dispatcher[Item](writer, concurrency=1, gate=Probe(), policy=NO_WAIT).run([batch("a", "b")])

    assert writer.writes == [["a", "b"], ["b"]]
    assert delivery.outcomes["b"].status is OutcomeStatus.CREATED
    assert (delivery.requests, delivery.retries) == (2 * (2 + 2 + 1), 1)


def test_the_window_still_bounds_uncommitted_batches_while_jobs_are_pending() -> None:
    writer = JobWriter(polls=2)
    dispatcher = Dispatcher[Item](writer, concurrency=2, gate=Probe(), policy=NO_WAIT)
    sent = dispatcher.run([batch(f"p{i}") for i in range(6)])

    first = next(sent)  # not committed yet: at most one more batch may be in flight meanwhile
    assert len(writer.writes) <= 2 and first.outcomes
    assert len(list(sent)) == 5


def test_complete_batch_gives_a_job_up_when_the_run_stops() -> None:
    writer = JobWriter(polls=5)
    result = writer.write_batch(records("a"))

    final = complete_batch(result, sleep=pytest.fail, stopped=lambda: True)

    assert final.outcomes == [Outcome.retryable("a", "job given up")]
    assert final.requests == 2 + 1 and writer.poll_gate == []


def test_complete_batch_leaves_a_finished_result_as_it_is() -> None:
    done = BatchResult([Outcome("a", OutcomeStatus.UPDATED)], requests=4)
    assert complete_batch(done) is done


def test_complete_batch_follows_a_chain_of_jobs() -> None:
    class Chained(Job):
        def result(self) -> BatchResult:
            if self.writer.polls == 1:
                return super().result()
            self.writer.polls -= 1
            return BatchResult([], requests=self.polls, pending=Chained(self.writer, self.records, 1))

    writer = JobWriter(polls=2)
    first = BatchResult([], requests=2, pending=Chained(writer, records("a"), 1))
    sleeps: list[Any] = []

    final = complete_batch(first, sleep=sleeps.append)

    assert final.outcomes == [Outcome("a", OutcomeStatus.CREATED)]
    assert final.requests == 2 + 1 + 2 and sleeps == [0.0, 0.0]
