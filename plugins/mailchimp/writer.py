"""Writes batches to a Mailchimp audience: members with merge fields, one tag per segment.

Consent-safe by construction [A8]: people new to the audience are created through the batch
endpoint with ``update_existing: false`` and ``status`` = ``status_if_new``; people already there
are updated with ``PUT .../members/{hash}`` *without* ``status``, so an unsubscribed, cleaned or
compliance-state member keeps that status. Tags go through the static-segment endpoint (≤500
emails per call); ``tags`` inside batch members is UNCONFIRMED and not used [A4, A5].
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Mapping, Sequence

import requests

from segport import (
    BadBatchError,
    BatchResult,
    BatchWriter,
    ConfigError,
    Outcome,
    OutcomeStatus,
    Record,
    RetryableDestinationError,
    RunContext,
    UnknownAudienceError,
)

from .api import MailchimpAPI, Problem, subscriber_hash

PAGE = 1000  # the largest page Mailchimp serves [A1]
SCALAR_TYPES = {"text", "number", "phone", "date", "birthday", "zip", "url", "imageurl", "radio", "dropdown"}
COMPLIANT_STATUSES = {"unsubscribed", "cleaned"}
# Outcomes after which the person is a member of the audience (tags may be applied), unless the
# batch create refused the address (then it is not a member, whatever the outcome).
ON_LIST = {OutcomeStatus.CREATED, OutcomeStatus.UPDATED, OutcomeStatus.UNCHANGED, OutcomeStatus.SKIPPED}


class MailchimpWriter(BatchWriter):
    """One run's writer for one audience."""

    def __init__(self, session: requests.Session, config: Mapping[str, Any], context: RunContext) -> None:
        super().__init__(session, config, context)
        self.api = MailchimpAPI(session, config)
        options = context.options
        self.audience = str(options["audience_id"])
        self.status_if_new = str(options.get("status_if_new", "subscribed"))
        self.prefix = str(options.get("tag_prefix", ""))
        self.archive_on_exit = options.get("on_exit") == "archive"
        self.tag_ids: dict[str, int] = {}  # segment name -> static segment (tag) id
        self.field_tags: dict[str, str] = {}  # mapped field -> the audience's merge tag

    # -- pre-flight ---------------------------------------------------------------------------
    def prepare(self) -> None:
        """Audience, merge fields and tags checked (and created where allowed) before sending."""
        self._check_audience()
        self._check_merge_fields()
        self._ensure_tags()

    def _check_audience(self) -> None:
        try:
            self.api.call("GET", f"/lists/{self.audience}", params={"fields": "id,name"})
        except Problem as exc:
            if exc.status != 404:
                raise
            lists = self.api.call("GET", "/lists", params={"count": PAGE, "fields": "lists.id,lists.name"}) or {}
            known = ", ".join(f"{a['id']} ({a['name']})" for a in lists.get("lists", [])) or "none"
            raise UnknownAudienceError(
                f"Mailchimp audience {self.audience!r} does not exist for these credentials (audiences: {known}); "
                "fix --option audience_id (the API list id, not the web id in the browser URL)"
            ) from None

    def _merge_fields(self) -> list[dict[str, Any]]:
        fields: list[dict[str, Any]] = []
        while True:
            page = (
                self.api.call(
                    "GET", f"/lists/{self.audience}/merge-fields", params={"count": PAGE, "offset": len(fields)}
                )
                or {}
            )
            fields.extend(page.get("merge_fields", []))
            if len(fields) >= int(page.get("total_items", 0)) or not page.get("merge_fields"):
                return fields

    def _check_merge_fields(self) -> None:
        existing = {str(f["tag"]).upper(): f for f in self._merge_fields()}
        mapped = {name.upper(): name for name in self.context.mapped_fields}
        missing = sorted(set(mapped) - set(existing))
        if missing and self.context.options.get("create_missing_fields"):
            for tag in missing:
                created = self.api.call(
                    "POST", f"/lists/{self.audience}/merge-fields", json={"name": tag, "tag": tag, "type": "text"}
                )
                existing[tag] = created or {"tag": tag, "type": "text"}
            missing = []
        if missing:
            raise ConfigError(
                f"audience {self.audience} has no merge field {', '.join(missing)}: create it in Mailchimp "
                "(Audience > Settings > Audience fields) or pass --option create_missing_fields=true"
            )
        for tag, name in mapped.items():
            kind = existing[tag].get("type", "text")
            if kind not in SCALAR_TYPES:
                raise ConfigError(
                    f"merge field {tag} is of type {kind!r}, which takes no single value: map it to a "
                    "text, number, date or other single-value field instead"
                )
            self.field_tags[name] = str(existing[tag]["tag"])
        required = sorted(t for t, f in existing.items() if f.get("required") and t not in mapped)
        if required:
            raise ConfigError(
                f"audience {self.audience} requires merge field {', '.join(required)}, which the export "
                f"does not map: add --map {required[0]}=ATTRIBUTE"
            )

    def _ensure_tags(self) -> None:
        found: dict[str, int] = {}
        offset = 0
        while True:
            page = (
                self.api.call(
                    "GET",
                    f"/lists/{self.audience}/segments",
                    params={"type": "static", "count": PAGE, "offset": offset},
                )
                or {}
            )
            segments = page.get("segments", [])
            found.update({str(s["name"]).lower(): int(s["id"]) for s in segments})  # casing may change [GRP]
            offset += len(segments)
            if not segments or offset >= int(page.get("total_items", 0)):
                break
        for segment in self.context.segments:
            name = self.prefix + segment
            tag_id = found.get(name.lower())
            if tag_id is None:
                created = self.api.call(
                    "POST", f"/lists/{self.audience}/segments", json={"name": name, "static_segment": []}
                )
                tag_id = int(created["id"])
            self.tag_ids[segment] = tag_id

    # -- writing ------------------------------------------------------------------------------
    def write_batch(self, records: Sequence[Record]) -> BatchResult:
        calls = _Counter()
        outcomes: dict[str, Outcome] = {}
        upserts = [r for r in records if r.upsert]
        existing = [r for r in upserts if not r.new]
        new = [r for r in upserts if r.new]
        absent: set[str] = set()  # keys the batch create refused: not members, so no tags
        if new:
            existing += self._create(new, outcomes, absent, calls)
        for record in existing:
            outcomes[record.key] = self._update(record, calls)
        on_list = [
            r for r in records if r.key not in absent and (r.key not in outcomes or outcomes[r.key].status in ON_LIST)
        ]
        self._tag(on_list, outcomes, calls)
        if self.archive_on_exit:
            for record in on_list:
                if not record.segments and record.key not in outcomes:
                    outcomes[record.key] = self._archive(record, calls)
        result = [outcomes.get(r.key) or Outcome(r.key, OutcomeStatus.UPDATED) for r in records]
        return BatchResult(result, requests=calls.count)

    def requests_for(self, records: Sequence[Record]) -> int:
        upserts = [r for r in records if r.upsert]
        tags = {segment for r in records for segment in r.add | r.remove}
        archives = sum(1 for r in records if self.archive_on_exit and not r.segments and not r.upsert)
        return int(any(r.new for r in upserts)) + sum(not r.new for r in upserts) + len(tags) + archives

    def _create(
        self, records: list[Record], outcomes: dict[str, Outcome], absent: set[str], calls: _Counter
    ) -> list[Record]:
        """Batch-create new people; return those Mailchimp already knew (to update without status)."""
        body = {"members": [self._member(r, status=self.status_if_new) for r in records], "update_existing": False}
        calls.count += 1
        try:
            answer = self.api.call("POST", f"/lists/{self.audience}", json=body) or {}
        except Problem as exc:
            if exc.status == 404:
                raise self._audience_gone() from None
            raise BadBatchError(
                f"Mailchimp refused the batch: {exc.title}: {exc.detail} {exc.field_errors()}".strip()
            ) from None
        by_email = {r.email: r for r in records}
        for member in answer.get("new_members", []):
            record = by_email.get(str(member.get("email_address", "")).lower())
            if record is not None:
                outcomes[record.key] = Outcome(record.key, OutcomeStatus.CREATED)
        known: list[Record] = []
        for error in answer.get("errors", []):
            record = by_email.get(str(error.get("email_address", "")).lower())
            if record is None:
                continue
            if error.get("error_code") == "ERROR_CONTACT_EXISTS" or "already a list member" in str(error.get("error")):
                known.append(record)
            else:
                absent.add(record.key)
                outcomes[record.key] = _member_error(
                    record.key, str(error.get("error", "")), error.get("field"), error.get("field_message")
                )
        for record in records:  # Mailchimp answered nothing about it: try it again
            if record.key not in outcomes and record not in known:
                outcomes[record.key] = Outcome.retryable(record.key, "Mailchimp's batch answer did not mention it")
        return known

    def _update(self, record: Record, calls: _Counter) -> Outcome:
        """Upsert one member without ``status``: an existing member's status never changes [A5, A8]."""
        body = self._member(record, status=None)
        body["status_if_new"] = self.status_if_new
        calls.count += 1
        try:
            member = self.api.call("PUT", f"/lists/{self.audience}/members/{subscriber_hash(record.email)}", json=body)
        except Problem as exc:
            if exc.status == 404:
                raise self._audience_gone() from None
            return _member_error(record.key, exc.detail or exc.title, None, exc.field_errors() or None)
        except RetryableDestinationError as exc:
            return Outcome.retryable(record.key, str(exc))
        status = str((member or {}).get("status", ""))
        if status in COMPLIANT_STATUSES:
            return Outcome(record.key, OutcomeStatus.SKIPPED, f"compliance: member is {status}; status left unchanged")
        return Outcome(record.key, OutcomeStatus.UPDATED)

    def _tag(self, records: list[Record], outcomes: dict[str, Outcome], calls: _Counter) -> None:
        """Add and remove segment tags through the static-segment endpoint, one call per tag [A5]."""
        adds: dict[str, list[Record]] = defaultdict(list)
        removes: dict[str, list[Record]] = defaultdict(list)
        for record in records:
            for segment in record.add:
                adds[segment].append(record)
            for segment in record.remove:
                removes[segment].append(record)
        for segment in sorted(set(adds) | set(removes)):
            tag_id = self.tag_ids.get(segment) or self._tag_id(segment, calls)
            if tag_id is None:
                continue
            body = {
                "members_to_add": [r.email for r in adds[segment]],
                "members_to_remove": [r.email for r in removes[segment]],
            }
            calls.count += 1
            try:
                answer = self.api.call("POST", f"/lists/{self.audience}/segments/{tag_id}", json=body) or {}
            except Problem as exc:
                if exc.status == 404:
                    raise self._audience_gone() from None
                raise BadBatchError(f"Mailchimp refused the tag update: {exc.title}: {exc.detail}") from None
            adding = {r.email: r for r in adds[segment]}
            for error in answer.get("errors", []):
                for address in error.get("email_addresses", []):
                    refused = adding.get(str(address).lower())
                    if refused is not None:
                        reason = f"tag {self.prefix + segment!r} not applied: {error.get('error', 'refused')}"
                        outcomes[refused.key] = Outcome.rejected(refused.key, reason)

    def _tag_id(self, segment: str, calls: _Counter) -> int | None:
        """The tag of a marker that is no exported segment any more (only removals reach here).

        None when the tag is gone: removing people from a tag that does not exist does nothing.
        """
        calls.count += 1
        name = (self.prefix + segment).lower()
        page = self.api.call("GET", f"/lists/{self.audience}/tag-search", params={"name": self.prefix + segment}) or {}
        for tag in page.get("tags", []):
            if str(tag.get("name", "")).lower() == name:
                self.tag_ids[segment] = int(tag["id"])
                return self.tag_ids[segment]
        return None

    def _archive(self, record: Record, calls: _Counter) -> Outcome:
        """``on_exit: archive``: DELETE archives the member (never a permanent delete) [A5]."""
        calls.count += 1
        try:
            self.api.call("DELETE", f"/lists/{self.audience}/members/{subscriber_hash(record.email)}")
        except Problem as exc:
            if exc.status == 404:
                return Outcome(record.key, OutcomeStatus.UPDATED)  # not on the audience any more
            return Outcome.rejected(record.key, f"not archived: {exc.detail or exc.title}")
        return Outcome(record.key, OutcomeStatus.UPDATED)

    def _member(self, record: Record, *, status: str | None) -> dict[str, Any]:
        member: dict[str, Any] = {"email_address": record.email}
        if status is not None:
            member["status"] = status
        if record.fields:
            member["merge_fields"] = {self.field_tags.get(k, k): _merge_value(v) for k, v in record.fields.items()}
        return member

    def _audience_gone(self) -> UnknownAudienceError:
        return UnknownAudienceError(
            f"Mailchimp audience {self.audience!r} no longer exists (deleted during the run?): "
            "fix --option audience_id; what was sent before is recorded"
        )


class _Counter:
    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


def _merge_value(value: Any) -> Any:
    """Merge values are strings or numbers; booleans are stringified [GRP]."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return value
    return str(value)


def _member_error(key: str, error: str, field: Any, field_message: Any) -> Outcome:
    """A per-member error from Mailchimp as an outcome [A4, A7]."""
    text = error.strip() or "refused by Mailchimp"
    if field or field_message:
        text += f" ({field or 'field'}: {field_message or 'invalid'})"
    lowered = text.lower()
    if "compliance state" in lowered:
        return Outcome(key, OutcomeStatus.SKIPPED, f"compliance: {text}")
    return Outcome.rejected(key, text)
