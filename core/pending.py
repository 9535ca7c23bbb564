"""Long platform jobs: a batch whose result the platform gives later, polled by the engine.

Some platforms take a batch as an asynchronous job and answer minutes later (Mailchimp's
``POST /batches``). A writer then hands back a :class:`PendingJob` in :attr:`BatchResult.pending`
instead of waiting inside ``write_batch``. The engine (:func:`complete_batch`) waits between polls
holding *no* slot of the credential's governor, so other batches and runs on the same credential
go on; each poll's HTTP call holds a call slot, like any call; the job's :meth:`PendingJob.result`
runs holding a batch slot again, as ``write_batch`` did. The batch stays uncommitted meanwhile: a
run killed while a job is pending re-sends it, and no more batches than before.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from .contract import BatchResult


class PendingJob(ABC):
    """A job a batch started on the platform; one per batch, driven by one thread at a time.

    The engine calls :meth:`next_poll`, sleeps that long, calls :meth:`poll`, and so on until
    :meth:`next_poll` answers None; then it calls :meth:`result` once. The job may keep state of its
    own (the platform's job id, its status, a deadline): it belongs to its batch alone.
    """

    @abstractmethod
    def next_poll(self) -> float | None:
        """Return the seconds to wait before the next :meth:`poll`; None once the job is over.

        The job is over when it finished, was lost, or passed the deadline the plugin gives it.
        """

    @abstractmethod
    def poll(self) -> None:
        """Ask the platform once how the job is doing.

        Absorb transient failures of the poll (the job runs on regardless; the next poll may answer);
        an error raised here fails the whole batch as ``write_batch`` raising it would.
        """

    @abstractmethod
    def result(self) -> BatchResult:
        """Return the batch's result: one outcome per record and the HTTP requests made for the job.

        The requests are those made since ``write_batch`` handed the job back (polls included). The
        result may hand back another job.

        Called once: after :meth:`next_poll` answered None, or earlier when the run stops (Ctrl-C, a
        fatal error of another batch): then give the job up (cancel it if the platform can) and make
        the records it held retryable.
        """


def complete_batch(
    result: BatchResult,
    *,
    gate: AbstractContextManager[object] | None = None,
    sleep: Callable[[float], object] = time.sleep,
    stopped: Callable[[], bool] | None = None,
) -> BatchResult:
    """Return ``result`` itself, or the final result of the job(s) it hands back, every request counted.

    Waits with ``sleep`` between polls holding nothing; takes each job's result holding ``gate``
    (the engine's batch slot). Once ``stopped()`` holds, it polls no more and asks the job for its
    result at once. Call it on whatever ``write_batch`` returns when you drive a writer yourself
    (a test, a script): ``complete_batch(writer.write_batch(records))``.
    """
    requests = 0
    while result.pending is not None:
        job = result.pending
        requests += result.requests
        while not (stopped and stopped()) and (wait := job.next_poll()) is not None:
            sleep(wait)
            if stopped and stopped():
                break
            job.poll()
        with gate if gate is not None else nullcontext():
            result = job.result()
    return replace(result, requests=requests + result.requests) if requests else result
