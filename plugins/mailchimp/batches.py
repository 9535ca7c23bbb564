"""Mailchimp's asynchronous batch operations: submit, poll, download the results.

Mailchimp runs one batch at a time per account and a batch may wait minutes behind others
(docs/providers/mailchimp.md#one-batch-at-a-time), so polling backs off (0.5 s doubling to 5 s)
and gives up only after a generous deadline, cancelling the batch so that a retry does not queue
behind it. The platform's rules: docs/providers/mailchimp.md#batch-operations-request and the
headings after it.
"""

from __future__ import annotations

import io
import json
import tarfile
import time
import zlib
from typing import Any, Callable, Mapping, Sequence

from segport import RetryableDestinationError
from segport.http import TRANSPORT_ERRORS

from .api import MailchimpAPI, Problem, one_line

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
    """Runs one list of operations through ``POST /batches`` and returns each operation's result."""

    # Batches queue one after another per account, for minutes (docs/providers/mailchimp.md#one-batch-at-a-time).
    first_poll = 0.5  # seconds before the first poll, doubled after each one ...
    max_poll = 2.0  # ... up to this: a finished job is seen within 2 s
    deadline = 1800.0  # seconds after submitting

    def __init__(
        self,
        api: MailchimpAPI,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api, self.sleep, self.clock = api, sleep, clock

    def run(self, operations: Sequence[Mapping[str, Any]], calls: Calls) -> Results:
        """Submit, wait until ``finished``, download and parse the results.

        Raises :class:`Problem` when ``POST /batches`` itself is refused, and
        :class:`RetryableDestinationError` when the results cannot be had (then no operation's fate is known).
        """
        calls.count += 1
        batch = _object(self.api.call("POST", "/batches", json={"operations": list(operations)}))
        batch_id = str(batch.get("id") or "")
        shown = one_line(batch_id)  # the id as messages show it: they are one line
        if not batch_id:
            raise RetryableDestinationError("Mailchimp accepted the batch but gave it no id")
        give_up, wait = self.clock() + self.deadline, self.first_poll
        while batch.get("status") != "finished":  # (docs/providers/mailchimp.md#batch-status)
            if self.clock() + wait > give_up:
                self._cancel(batch_id, calls)
                raise RetryableDestinationError(
                    f"Mailchimp batch {shown} did not finish within {self.deadline:.0f} s (cancelled)"
                )
            self.sleep(wait)
            wait = min(wait * 2, self.max_poll)
            calls.count += 1
            try:
                batch = _object(self.api.call("GET", f"/batches/{batch_id}"))
            except _POLL_FAILURES:
                continue  # a throttled or failed poll: the batch runs on regardless
            except Problem as exc:
                raise RetryableDestinationError(
                    f"Mailchimp lost batch {shown} ({exc.status} {exc.title})".strip()
                ) from None
        url = batch.get("response_body_url")
        if not url:
            raise RetryableDestinationError(f"Mailchimp finished batch {shown} without a results URL")
        calls.count += 1
        return parse_results(self.api.download(str(url)))

    def _cancel(self, batch_id: str, calls: Calls) -> None:
        """``DELETE /batches/{id}`` stops a batch; best effort (a retry is safe either way).

        See docs/providers/mailchimp.md#batch-status.
        """
        calls.count += 1
        try:
            self.api.call("DELETE", f"/batches/{batch_id}")
        except _CANCEL_FAILURES:
            pass


def parse_results(archive: bytes) -> Results:
    """A gzipped tar of JSON files, each an array of ``{status_code, operation_id, response}`` where
    ``response`` is the operation's answer as a JSON string. Unreadable archives are retryable.

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
    """A batch status answer as an object (``{}`` for anything else, which then lacks an id or URL)."""
    return answer if isinstance(answer, dict) else {}


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: a status of 1e999 is infinity
        return 0


def _decode(response: Any) -> Any:
    """The operation's answer: ``response`` is a JSON string; an object is taken as is.

    See docs/providers/mailchimp.md#batch-results.
    """
    if isinstance(response, (str, bytes)):
        try:
            return json.loads(response) if response else None
        except (ValueError, RecursionError):
            return None
    return response
