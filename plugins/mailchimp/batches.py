"""Mailchimp's asynchronous batch operations: submit, poll, download the results.

Mailchimp runs one batch at a time per account and a batch may wait minutes behind others
(docs/providers/mailchimp.md#one-batch-at-a-time), so polling backs off (0.5 s doubling to 2 s)
and gives up only after a generous deadline, cancelling the batch so that a retry does not queue
behind it. The waiting is not done here: the writer hands the job to the engine as a
:class:`segport.PendingJob`. The platform's rules: docs/providers/mailchimp.md#batch-operations-request
and the headings after it.
"""

from __future__ import annotations

import io
import json
import tarfile
import time
import zlib
from typing import Any, Callable, Mapping, Sequence

from segport import RetryableDestinationError
from segport.http import TRANSPORT_ERRORS, one_line

from .api import MailchimpAPI, Problem

# A failed poll or cancel: the batch runs on regardless, the next poll may answer.
_POLL_FAILURES: tuple[type[Exception], ...] = (RetryableDestinationError, *TRANSPORT_ERRORS)
_CANCEL_FAILURES: tuple[type[Exception], ...] = (Problem, *_POLL_FAILURES)
Results = dict[str, tuple[int, Any]]  # operation_id -> (status_code, decoded response)


class Calls:
    """How many HTTP calls a batch write made (every submit, poll and download counts)."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


class BatchRunner:
    """Submits lists of operations through ``POST /batches``; the jobs it starts poll with its settings."""

    # Batches queue one after another per account, for minutes (docs/providers/mailchimp.md#one-batch-at-a-time).
    first_poll = 0.5  # seconds before the first poll, doubled after each one ...
    max_poll = 2.0  # ... up to this: a finished job is seen within 2 s (jobs queue one after another)
    deadline = 1800.0  # seconds after submitting; batches can queue for minutes per account

    def __init__(self, api: MailchimpAPI, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.api, self.clock = api, clock

    def submit(self, operations: Sequence[Mapping[str, Any]], calls: Calls) -> BatchJob:
        """Start a batch; its :class:`BatchJob` counts its own calls in ``calls`` too.

        Raises :class:`Problem` when ``POST /batches`` itself is refused, and
        :class:`RetryableDestinationError` when it fails transiently or gives the batch no id.
        """
        calls.count += 1
        batch = _object(self.api.call("POST", "/batches", json={"operations": list(operations)}))
        batch_id = str(batch.get("id") or "")
        if not batch_id:
            raise RetryableDestinationError("Mailchimp accepted the batch but gave it no id")
        return BatchJob(self, batch_id, batch, calls)


class BatchJob:
    """One submitted batch: polled until ``finished`` (0.5 s doubling to 2 s), then its results.

    The caller sleeps :meth:`next_poll` seconds before each :meth:`poll`; :meth:`results` downloads
    what the batch did, or cancels a batch still queued (a retry then does not queue behind it).
    """

    def __init__(self, runner: BatchRunner, batch_id: str, batch: Mapping[str, Any], calls: Calls) -> None:
        self.api, self.clock, self.calls = runner.api, runner.clock, calls
        self.batch_id = batch_id
        self.shown = one_line(batch_id)  # the id as messages show it: they are one line
        self.batch = batch
        self.deadline = runner.deadline
        self.give_up = self.clock() + runner.deadline
        self.wait, self.max_poll = runner.first_poll, runner.max_poll
        self.lost: str | None = None  # why Mailchimp cannot say what the batch did, once a poll found out

    @property
    def finished(self) -> bool:
        """Whether the last answer said ``finished`` (not pending|preprocessing|started|finalizing).

        See docs/providers/mailchimp.md#batch-status.
        """
        return self.batch.get("status") == "finished"

    def next_poll(self) -> float | None:
        """Seconds until the next poll; None once finished, lost, or the next poll would pass the deadline."""
        if self.finished or self.lost is not None or self._past_deadline():
            return None
        return self.wait

    def poll(self) -> None:
        """``GET /batches/{id}``; a throttled or failed poll changes nothing (the batch runs on regardless)."""
        self.wait = min(self.wait * 2, self.max_poll)
        self.calls.count += 1
        try:
            self.batch = _object(self.api.call("GET", "/batches/{batch_id}", batch_id=self.batch_id))
        except _POLL_FAILURES:
            return
        except Problem as exc:
            self.lost = f"Mailchimp lost batch {self.shown} ({exc.status} {exc.title})".strip()

    def results(self) -> Results:
        """Return each operation's result.

        Raises :class:`RetryableDestinationError` when they cannot be had (then no operation's fate is
        known): lost, no results URL, a failed download, or not finished (the batch is then cancelled:
        the deadline passed, or the run is stopping).
        """
        if self.lost is not None:
            raise RetryableDestinationError(self.lost)
        if not self.finished:
            self._cancel()
            if self._past_deadline():
                raise RetryableDestinationError(
                    f"Mailchimp batch {self.shown} did not finish within {self.deadline:.0f} s (cancelled)"
                )
            raise RetryableDestinationError(f"Mailchimp batch {self.shown} was cancelled: the run is stopping")
        url = self.batch.get("response_body_url")
        if not url:
            raise RetryableDestinationError(f"Mailchimp finished batch {self.shown} without a results URL")
        self.calls.count += 1
        return parse_results(self.api.download(str(url)))

    def _past_deadline(self) -> bool:
        return self.clock() + self.wait > self.give_up

    def _cancel(self) -> None:
        """``DELETE /batches/{id}`` stops a batch; best effort (a retry is safe either way).

        See docs/providers/mailchimp.md#batch-status.
        """
        self.calls.count += 1
        try:
            self.api.call("DELETE", "/batches/{batch_id}", batch_id=self.batch_id)
        except _CANCEL_FAILURES:
            pass


def parse_results(archive: bytes) -> Results:
    """Read each operation's result from a batch's results archive.

    The archive is a gzipped tar of JSON files, each an array of ``{status_code, operation_id, response}``
    where ``response`` is the operation's answer as a JSON string. Unreadable archives are retryable.

    See docs/providers/mailchimp.md#batch-results.
    """
    found: Results = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
            for entry in tar:
                handle = tar.extractfile(entry) if entry.isfile() else None
                if handle is None:
                    continue
                try:
                    items = json.loads(handle.read())
                except (ValueError, RecursionError):
                    continue  # not a results file
                for item in items if isinstance(items, list) else []:
                    if isinstance(item, dict) and item.get("operation_id") is not None:
                        found[str(item["operation_id"])] = (
                            _int(item.get("status_code")),
                            _decode(item.get("response")),
                        )
    except (tarfile.TarError, OSError, EOFError, zlib.error):
        raise RetryableDestinationError("Mailchimp's batch results are not a readable .tar.gz") from None
    return found


def _object(answer: Any) -> dict[str, Any]:
    """Return a batch status answer as an object (``{}`` for anything else, which then lacks an id or URL)."""
    return answer if isinstance(answer, dict) else {}


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: a status of 1e999 is infinity
        return 0


def _decode(response: Any) -> Any:
    """Return the operation's answer: ``response`` is a JSON string; an object is taken as is.

    See docs/providers/mailchimp.md#batch-results.
    """
    if isinstance(response, (str, bytes)):
        try:
            return json.loads(response) if response else None
        except (ValueError, RecursionError):
            return None
    return response
