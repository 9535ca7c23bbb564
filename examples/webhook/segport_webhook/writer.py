"""Writes batches to one audience of a webhook receiver: one signed ``members:batch`` call per batch.

Each record becomes one member ``{"id", "email", "fields", "segments", "add", "remove", "upsert"}``;
the receiver answers one result per member, keyed by ``id`` (README.md, "Batches"). Results map to
outcomes one to one; a member the answer does not mention is retryable, never silently delivered.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping, Sequence

import requests

from segport import (
    BadBatchError,
    BatchResult,
    BatchWriter,
    Outcome,
    OutcomeStatus,
    Record,
    RunContext,
    UnknownAudienceError,
)
from segport.http import ApiError, one_line

from .client import WebhookClient
from .protocol import AUDIENCE, BATCH, member_id

log = logging.getLogger(__name__)

STATUS = {
    "created": OutcomeStatus.CREATED,
    "updated": OutcomeStatus.UPDATED,
    "unchanged": OutcomeStatus.UNCHANGED,
}
MISSING = "the receiver's answer held no result for this member (it is sent again)"


class WebhookWriter(BatchWriter):
    """One run's writer for one audience.

    :param session: the engine's session, carrying :class:`~segport_webhook.auth.WebhookAuth`.
    :param config: the validated connection config.
    :param context: the run; ``context.options["audience"]`` names the receiver's list.
    """

    def __init__(self, session: requests.Session, config: Mapping[str, Any], context: RunContext) -> None:
        super().__init__(session, config, context)
        self.client = WebhookClient(session, config)
        self.audience = str(context.options["audience"])

    def prepare(self) -> None:
        """``GET /audiences/{audience}``: the audience must exist (the receiver creates none).

        :raises segport.UnknownAudienceError: the receiver answered 404.
        """
        try:
            answer = self.client.call("GET", AUDIENCE, audience=self.audience)
        except ApiError as exc:
            if exc.status == 404:
                raise UnknownAudienceError(
                    f"the webhook receiver at {self.client.host} has no audience {self.audience!r}: fix --option "
                    "audience (the receiver's list name) or create the audience on the receiver"
                ) from None
            raise
        members = answer.get("members") if isinstance(answer, dict) else None
        log.info("webhook audience %r holds %s members", self.audience, members if isinstance(members, int) else "?")

    def write_batch(self, records: Sequence[Record]) -> BatchResult:
        """One ``POST /audiences/{audience}/members:batch`` carrying every record.

        :param records: at most the destination's batch size (500).
        :raises segport.BadBatchError: the receiver refused the body (400) or its size (413).
        :raises segport.UnknownAudienceError: the audience is gone (404).
        :raises segport.RetryableDestinationError: 429 or 5xx.
        :raises segport.AuthError: 401 or 403.
        """
        if not records:
            return BatchResult([], requests=0)
        members = [self.member(r) for r in records]
        log.debug("POST %s with %d members", BATCH, len(members))
        try:
            answer = self.client.call("POST", BATCH, json={"members": members}, audience=self.audience)
        except ApiError as exc:
            if exc.status == 404:
                raise UnknownAudienceError(
                    f"the webhook receiver at {self.client.host} no longer has the audience {self.audience!r}: "
                    "fix --option audience; what was sent before is recorded"
                ) from None
            if exc.status in (400, 413):
                shown = f"{exc.status}: {exc.detail}" if exc.detail else str(exc.status)
                raise BadBatchError(f"the webhook receiver refused the batch ({shown})") from None
            raise
        results = _results(answer)
        outcomes = [self.outcome(r, results.get(m["id"])) for r, m in zip(records, members, strict=True)]
        return BatchResult(outcomes, requests=1)

    def member(self, record: Record) -> dict[str, Any]:
        """Return the protocol's member object for a record.

        :param record: one profile's work (its email is normalised already).
        """
        return {
            "id": member_id(record.email),
            "email": record.email,
            "fields": dict(record.fields),
            "segments": sorted(record.segments),
            "add": sorted(record.add),
            "remove": sorted(record.remove),
            "upsert": record.upsert,
        }

    def outcome(self, record: Record, result: Mapping[str, Any] | None) -> Outcome:
        """Return the outcome of one record from its result (None: the answer held none).

        :param record: the record sent.
        :param result: the receiver's result object for the record's id.
        """
        if result is None:
            return Outcome.retryable(record.key, MISSING)
        status = result.get("status")
        if status == "rejected":
            reason = result.get("reason")
            return Outcome.rejected(record.key, one_line(reason) if reason else "rejected by the receiver")
        if isinstance(status, str) and status in STATUS:
            return Outcome(record.key, STATUS[status])
        return Outcome.retryable(record.key, f"the receiver answered an unknown status {one_line(status, 40)!r}")


def _results(document: Any) -> dict[str, Mapping[str, Any]]:
    """Return the answer's results by member id (the first result of an id wins; malformed ones are dropped)."""
    found: dict[str, Mapping[str, Any]] = {}
    items = document.get("results") if isinstance(document, dict) else None
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and isinstance(item.get("id"), str):
            found.setdefault(item["id"], item)
    return found
