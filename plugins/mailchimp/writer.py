"""Writes batches to a Mailchimp audience: members with merge fields, one tag per segment.

Consent-safe by construction (docs/providers/mailchimp.md#compliance-state): people new to the
audience are created through the batch endpoint with ``update_existing: false`` and ``status`` =
``status_if_new``; people already there are updated with ``PUT .../members/{hash}`` *without*
``status`` (one by one, or as operations of one ``POST /batches`` job from
:data:`BATCH_UPDATES_FROM` on, docs/providers/mailchimp.md#batch-operations-request), so an
unsubscribed, cleaned or compliance-state member keeps that status. Archived members are not
re-added unless the export's ``readd_archived`` option says so or the sync ledger shows segport
archived them while subscribed: the pre-flight lists the audience's archived, unsubscribed and
cleaned members for that (docs/providers/mailchimp.md#archived-and-unsubscribed-members). New members get their tags
inside the batch create (``tags``: accepted but UNCONFIRMED in the schema,
docs/providers/mailchimp.md#tags-in-batch-members); tags the answer does not confirm, and all
other tag changes, go through the static-segment endpoint (≤500 emails per call,
docs/providers/mailchimp.md#tag-membership-in-bulk).

Calls per ``write_batch`` (at best): 1 for new people with their tags; 1 per existing person below
:data:`BATCH_UPDATES_FROM`, else 3 (submit, poll, download); 1 per tag with other changes. A
``/batches`` job goes back to the engine as a :class:`segport.PendingJob` (:class:`UpdatesJob`),
which polls it without holding a governor slot and then lets the job tag and archive as
``write_batch`` would have.

Concurrent batches share nothing mutable but two :class:`segport.Learned` maps: what this server
turned out not to support (``/batches``, tags in batch creates) and the ids of tags found by name.
"""

from __future__ import annotations

import json
from collections import defaultdict
from concurrent.futures import Future
from functools import partial
from typing import Any, Mapping, Sequence

import requests

from segport import (
    BadBatchError,
    BatchResult,
    BatchWriter,
    ConfigError,
    Learned,
    MemberState,
    Outcome,
    OutcomeStatus,
    PendingJob,
    Record,
    RetryableDestinationError,
    RunContext,
    UnknownAudienceError,
)
from segport.http import one_line

from .api import MEMBER, MailchimpAPI, Problem, as_object, error_from, objects_in, subscriber_hash
from .batches import BatchJob, BatchRunner, Calls
from .members import MemberReader

PAGE = 1000  # the largest page Mailchimp serves (docs/providers/mailchimp.md#pagination)
SCALAR_TYPES = {"text", "number", "phone", "date", "birthday", "zip", "url", "imageurl", "radio", "dropdown"}
COMPLIANT_STATUSES = {"unsubscribed", "cleaned"}
ARCHIVED = "archived"
# Statuses whose members the pre-flight lists (docs/providers/mailchimp.md#archived-and-unsubscribed-members):
# nobody holding one is ever created or updated as subscribed.
HELD_STATUSES = (ARCHIVED, "unsubscribed", "cleaned")
MEMBER_FIELDS = "members.email_address,total_items"  # `fields` keeps a listing page small
# Outcomes after which the person is a member of the audience (tags may be applied), unless the
# batch create refused the address (then it is not a member, whatever the outcome).
ON_LIST = {OutcomeStatus.CREATED, OutcomeStatus.UPDATED, OutcomeStatus.UNCHANGED, OutcomeStatus.SKIPPED}
# From this many existing people in one write_batch, their PUTs go as one /batches job
# (docs/providers/mailchimp.md#batch-operations-request). The job costs 3 calls at best (submit,
# one poll, download) plus the poll wait and Mailchimp's queue, so 3 or 4 sequential PUTs are as
# quick and answer at once; from 5 on the job saves calls and time.
BATCH_UPDATES_FROM = 5
BATCH_CALLS = 3  # submit + one poll + download, the least a /batches job costs
# Pre-flight reads and creates in parallel, well under the 10-connection cap
# (docs/providers/mailchimp.md#connection-limit).
PREFLIGHT_CALLS = 4
# What a server may turn out not to support, learned by the first batch it refuses (see ``lacking``):
# docs/providers/mailchimp.md#batch-operations-request and docs/providers/mailchimp.md#tags-in-batch-members.
BATCHES = "POST /batches"  # answered 404/405: a server without batch operations
MEMBER_TAGS = "tags in a batch create"  # refused: a server holding to the 3.0.55 schema


class MailchimpWriter(BatchWriter):
    """One run's writer for one audience."""

    def __init__(self, session: requests.Session, config: Mapping[str, Any], context: RunContext) -> None:
        super().__init__(session, config, context)
        self.api = MailchimpAPI(session, config)
        options = context.options
        self.audience = str(options["audience_id"])
        self.status_if_new = str(options.get("status_if_new", "subscribed"))
        self.prefix = str(options.get("tag_prefix", ""))
        # A repair run (context.repair) archives nobody, re-adds nobody and creates nobody.
        self.archive_on_exit = options.get("on_exit") == "archive" and not context.repair
        self.readd_archived = bool(options.get("readd_archived", False)) and not context.repair
        # address -> archived, unsubscribed or cleaned, as the pre-flight listed them (read-only once prepared)
        self.held: dict[str, str] = {}
        self.tag_ids: dict[str, int] = {}  # exported segment -> static segment (tag) id, found by prepare()
        self.field_tags: dict[str, str] = {}  # mapped field -> the audience's merge tag, found by prepare()
        self.batches = BatchRunner(self.api)
        self.lacking: Learned[str, bool] = Learned()  # BATCHES, MEMBER_TAGS: what this server does not support
        self.found_tags: Learned[str, int] = Learned()  # a segment no longer exported -> its tag id, by name

    # -- pre-flight ---------------------------------------------------------------------------
    def prepare(self) -> None:
        """Audience, merge fields and tags checked (and created where allowed) before sending.

        The three reads run at once, then all creates at once: ~2 round trips. A wrong audience is
        still reported as such (with the known audiences), not as the merge-field 404 it also causes.
        A dry run makes the same reads and checks and notes what it would create instead.
        """
        api, audience = self.api, self.audience
        reads = api.gather(
            [
                partial(api.call, "GET", "/lists/{list_id}", params={"fields": "id,name"}, list_id=audience),
                partial(self._pages, "merge-fields", "merge_fields", {}),
                partial(self._pages, "segments", "segments", {"type": "static"}),
            ],
            parallel=PREFLIGHT_CALLS,
        )
        self._check_audience(reads[0])
        missing_fields = self._check_merge_fields(reads[1].result())
        missing_tags = self._find_tags(reads[2].result())
        if self.context.dry_run:  # the same checks; what the real run would create is only noted
            self.would_create += [f"merge field {tag} (text)" for tag in missing_fields]
            self.would_create += [f"tag {self.prefix + s}" for s in missing_tags]
            self.held = self._held_members()
            return
        new_field = partial(api.call, "POST", "/lists/{list_id}/merge-fields", list_id=audience)
        new_tag = partial(api.call, "POST", "/lists/{list_id}/segments", list_id=audience)
        creates = [partial(new_field, json={"name": tag, "tag": tag, "type": "text"}) for tag in missing_fields] + [
            partial(new_tag, json={"name": self.prefix + s, "static_segment": []}) for s in missing_tags
        ]
        created = [future.result() for future in api.gather(creates, parallel=PREFLIGHT_CALLS)]
        for segment, tag in zip(missing_tags, created[len(missing_fields) :], strict=True):
            tag_id = _int_id(as_object(tag).get("id"))
            if tag_id is None:
                raise RetryableDestinationError(
                    f"Mailchimp created the tag {one_line(self.prefix + segment)!r} but answered no numeric id: "
                    "run the export again (it will find the tag)"
                )
            self.tag_ids[segment] = tag_id
        self.held = self._held_members()

    def _held_members(self) -> dict[str, str]:
        """Return the audience's archived, unsubscribed and cleaned members: address -> status.

        One paged listing per status, only the addresses (``fields``): a handful of calls per run
        however many records follow, never one per record. One after the other, so that the calls
        come in a known order; each page is a single small answer.
        See docs/providers/mailchimp.md#archived-and-unsubscribed-members.
        """
        held: dict[str, str] = {}
        for status in HELD_STATUSES:
            for member in self._pages("members", "members", {"status": status, "fields": MEMBER_FIELDS}):
                address = str(member.get("email_address", "")).strip().lower()
                if address:
                    held[address] = status
        return held

    def _check_audience(self, found: Future[Any]) -> None:
        try:
            found.result()
        except Problem as exc:
            if exc.status != 404:
                raise
            lists = as_object(self.api.call("GET", "/lists", params={"count": PAGE, "fields": "lists.id,lists.name"}))
            known = one_line(", ".join(f"{a.get('id')} ({a.get('name')})" for a in objects_in(lists.get("lists"))))
            raise UnknownAudienceError(
                f"Mailchimp audience {self.audience!r} does not exist for these credentials "
                f"(audiences: {known or 'none'}); fix --option audience_id (the API list id, not the web id in the "
                "browser URL)"
            ) from None

    def _pages(self, path: str, key: str, params: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        """Every item of an audience's collection, ``count`` ≤ 1000 per page, ``offset``, ``total_items``.

        See docs/providers/mailchimp.md#pagination.
        """
        items: list[Mapping[str, Any]] = []
        while True:
            query = {**params, "count": PAGE, "offset": len(items)}
            page = as_object(self.api.call("GET", f"/lists/{{list_id}}/{path}", params=query, list_id=self.audience))
            found = objects_in(page.get(key))
            items.extend(found)
            if not found or len(items) >= (_int_id(page.get("total_items")) or 0):
                return items

    def _check_merge_fields(self, fields: list[Mapping[str, Any]]) -> list[str]:
        """Check the mapped merge fields; return the missing tags to create (when allowed).

        See docs/providers/mailchimp.md#merge-fields.
        """
        existing = {one_line(f["tag"]).upper(): f for f in fields if f.get("tag")}
        mapped = {name.upper(): name for name in self.context.mapped_fields}
        missing = sorted(set(mapped) - set(existing))
        if missing and not self.context.options.get("create_missing_fields"):
            raise ConfigError(
                f"audience {self.audience} has no merge field {', '.join(missing)}: create it in Mailchimp "
                "(Audience > Settings > Audience fields) or pass --option create_missing_fields=true"
            )
        existing.update({tag: {"tag": tag, "type": "text"} for tag in missing})  # created as text below
        for tag, name in mapped.items():
            kind = existing[tag].get("type", "text")
            if not isinstance(kind, str) or kind not in SCALAR_TYPES:
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
        return missing

    def _find_tags(self, segments: list[Mapping[str, Any]]) -> list[str]:
        """Note the ids of the exported segments' tags; return the segments whose tag must be created."""
        found: dict[str, int] = {}
        for item in segments:
            tag_id = _int_id(item.get("id"))
            if tag_id is not None:
                # Mailchimp may change a tag name's casing (docs/providers/mailchimp.md#tag-name-casing).
                found[str(item.get("name", "")).lower()] = tag_id
        missing = []
        for segment in self.context.segments:
            tag_id = found.get((self.prefix + segment).lower())
            if tag_id is None:
                missing.append(segment)
            else:
                self.tag_ids[segment] = tag_id
        return missing

    # -- writing ------------------------------------------------------------------------------
    def write_batch(self, records: Sequence[Record]) -> BatchResult:
        """Create, update (a pending /batches job from :data:`BATCH_UPDATES_FROM` on), tag, archive."""
        write = _Write(records)
        upserts: list[Record] = []
        for record in records:
            if self.held.get(record.email) == ARCHIVED and (record.upsert or record.add):
                if not self._may_readd(record.email):
                    write.absent.add(record.key)  # not on the audience: no tags either
                    write.outcomes[record.key] = _archived_skip(record.key)
                    continue
                upserts.append(record)  # re-added with status_if_new, fields and tags
            elif record.upsert:
                upserts.append(record)
        # Listed unsubscribed or cleaned: members already, updated without a status.
        existing = [r for r in upserts if not r.new or self.held.get(r.email) in COMPLIANT_STATUSES]
        new = [r for r in upserts if r.new and self.held.get(r.email) not in COMPLIANT_STATUSES]
        if new:
            existing += self._create(new, write)
        job = self._update_all(existing, write)
        if job is not None:
            return BatchResult([], requests=write.calls.count, pending=UpdatesJob(self, write, existing, job))
        return self._finish(write)

    def _may_readd(self, email: str) -> bool:
        """Whether an archived member may be re-added: by option, or archived by segport while subscribed.

        Mailchimp does not report an archived member's earlier status
        (docs/providers/mailchimp.md#archived-and-unsubscribed-members), so only the sync ledger can tell.
        """
        if self.context.repair:
            return False
        return self.readd_archived or self.context.archived_by_segport.get(email) == "subscribed"

    def requests_for(self, records: Sequence[Record]) -> int:
        """Return the fewest calls: new people's tags land with the create, a /batches job polled once."""
        upserts = [r for r in records if r.upsert]
        updates = sum(not r.new for r in upserts)
        member_tags = self.lacking.get(MEMBER_TAGS) is None
        tags = {segment for r in records for segment in r.remove}
        tags |= {segment for r in records if not (r.upsert and r.new and member_tags) for segment in r.add}
        archives = sum(1 for r in records if self.archive_on_exit and not r.segments and not r.upsert)
        batched = updates >= BATCH_UPDATES_FROM and self.lacking.get(BATCHES) is None
        return int(any(r.new for r in upserts)) + (BATCH_CALLS if batched else updates) + len(tags) + archives

    def _finish(self, write: _Write) -> BatchResult:
        """Tag and archive the people on the audience now; one outcome per record of the batch."""
        outcomes = write.outcomes
        on_list = [
            r
            for r in write.records
            if r.key not in write.absent and (r.key not in outcomes or outcomes[r.key].status in ON_LIST)
        ]
        self._tag(on_list, write)
        if self.archive_on_exit:
            for record in on_list:
                if not record.segments and record.key not in outcomes:
                    outcomes[record.key] = self._archive(record, write.calls)
        result = [outcomes.get(r.key) or Outcome(r.key, OutcomeStatus.UPDATED) for r in write.records]
        return BatchResult(result, requests=write.calls.count)

    def _create(self, records: list[Record], write: _Write) -> list[Record]:
        """Batch-create new people with their tags; return those Mailchimp already knew (to update)."""
        outcomes, absent, tagged = write.outcomes, write.absent, write.tagged
        member_tags = self.lacking.get(MEMBER_TAGS) is None
        members = [self._member(r, status=self.status_if_new, tags=member_tags) for r in records]
        write.calls.count += 1
        try:
            answer = self.api.call(
                "POST", "/lists/{list_id}", json={"members": members, "update_existing": False}, list_id=self.audience
            )
        except Problem as exc:
            if exc.status == 404:
                raise self._audience_gone() from None
            if member_tags and "tags" in f"{exc.detail} {exc.field_errors()}".lower():
                # A server holding to the 3.0.55 schema, without `tags`
                # (docs/providers/mailchimp.md#tags-in-batch-members).
                self.lacking.learn(MEMBER_TAGS, True)
                return self._create(records, write)
            raise BadBatchError(
                f"Mailchimp refused the batch: {exc.title}: {exc.detail} {exc.field_errors()}".strip()
            ) from None
        answer = as_object(answer)
        by_email = {r.email: r for r in records}
        for member in objects_in(answer.get("new_members")):
            record = by_email.get(str(member.get("email_address", "")).lower())
            if record is not None:
                status = str(member.get("status") or self.status_if_new)
                outcomes[record.key] = Outcome(record.key, OutcomeStatus.CREATED, platform_status=status)
                # Trust but verify: only tags the member object shows count as applied
                # (docs/providers/mailchimp.md#member-object).
                tagged[record.key] = {str(t.get("name", "")).lower() for t in objects_in(member.get("tags"))}
        known: list[Record] = []
        for error in objects_in(answer.get("errors")):
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

    def _update_all(self, records: list[Record], write: _Write) -> BatchJob | None:
        """Update existing people: a /batches job from :data:`BATCH_UPDATES_FROM` on, else one PUT each.

        The job is returned, to be polled; without one, None.

        See docs/providers/mailchimp.md#batch-operations-request.
        """
        if len(records) >= BATCH_UPDATES_FROM and self.lacking.get(BATCHES) is None:
            operations = [self._operation(f"r{i}", r) for i, r in enumerate(records)]
            try:
                return self.batches.submit(operations, write.calls)
            except Problem as exc:  # /batches refused: the single PUTs below do the same work
                if exc.status in (404, 405):
                    self.lacking.learn(BATCHES, True)  # this server has no /batches: stop asking
            except RetryableDestinationError as exc:
                write.outcomes.update({r.key: Outcome.retryable(r.key, str(exc)) for r in records})
                return None
        for record in records:
            write.outcomes[record.key] = self._update(record, write.calls)
        return None

    def _update(self, record: Record, calls: Calls) -> Outcome:
        """Upsert one member without ``status``: an existing member's status never changes.

        See docs/providers/mailchimp.md#add-or-update-a-member.
        """
        calls.count += 1
        try:
            member_id = subscriber_hash(record.email)
            member = self.api.call(
                "PUT", MEMBER, json=self._put_body(record), list_id=self.audience, subscriber_hash=member_id
            )
        except (Problem, RetryableDestinationError) as exc:
            return self._put_outcome(record, exc)
        return self._put_outcome(record, member)

    def _operation(self, operation_id: str, record: Record) -> dict[str, Any]:
        """:meth:`_update`'s PUT as a batch operation; ``body`` is a JSON *string*.

        See docs/providers/mailchimp.md#batch-operations-request.
        """
        path = f"/lists/{self.audience}/members/{subscriber_hash(record.email)}"
        body = json.dumps(self._put_body(record))
        return {"method": "PUT", "path": path, "operation_id": operation_id, "params": {}, "body": body}

    def _batch_outcome(self, record: Record, result: tuple[int, Any] | None) -> Outcome:
        """One operation's result as the outcome the single PUT would give.

        See docs/providers/mailchimp.md#batch-results.
        """
        if result is None or result[0] < 200:
            return Outcome.retryable(record.key, "Mailchimp's batch results did not mention it")
        status, answer = result
        if status < 300:
            return self._put_outcome(record, answer)
        return self._put_outcome(record, error_from(status, answer if isinstance(answer, Mapping) else {}))

    def _put_outcome(self, record: Record, answer: Any) -> Outcome:
        """Return a PUT's member object, or its error, as an outcome; raise what stops the run.

        See docs/providers/mailchimp.md#add-or-update-a-member, docs/providers/mailchimp.md#error-texts
        and docs/providers/mailchimp.md#compliance-state.
        """
        if isinstance(answer, Problem):
            if answer.status == 404:  # PUT upserts: only the audience can be missing
                raise self._audience_gone() from None
            return _member_error(record.key, answer.detail or answer.title, None, answer.field_errors() or None)
        if isinstance(answer, RetryableDestinationError):
            return Outcome.retryable(record.key, str(answer))
        if isinstance(answer, Exception):
            raise answer
        status = str(answer.get("status", "")) if isinstance(answer, Mapping) else ""
        if status in COMPLIANT_STATUSES:
            reason = f"consent: member is {status}; status left unchanged"
            return Outcome(record.key, OutcomeStatus.SKIPPED, reason, platform_status=status)
        return Outcome(record.key, OutcomeStatus.UPDATED, platform_status=status or None)

    def _tag(self, records: list[Record], write: _Write) -> None:
        """Tag changes not already confirmed, through the static-segment endpoint, one call per tag.

        See docs/providers/mailchimp.md#tag-membership-in-bulk.
        """
        outcomes, tagged, calls = write.outcomes, write.tagged, write.calls
        adds: dict[str, list[Record]] = defaultdict(list)
        removes: dict[str, list[Record]] = defaultdict(list)
        for record in records:
            confirmed = tagged.get(record.key, set())
            for segment in record.add:
                # Names compare case-insensitively (docs/providers/mailchimp.md#tag-name-casing).
                if (self.prefix + segment).lower() not in confirmed:
                    adds[segment].append(record)
            for segment in record.remove:
                removes[segment].append(record)
        for segment in sorted(set(adds) | set(removes)):
            tag_id = self.tag_ids.get(segment) or self.found_tags.get(segment) or self._tag_id(segment, calls)
            if tag_id is None:
                continue
            body = {
                "members_to_add": [r.email for r in adds[segment]],
                "members_to_remove": [r.email for r in removes[segment]],
            }
            calls.count += 1
            try:
                answer = self.api.call(
                    "POST", "/lists/{list_id}/segments/{tag_id}", json=body, list_id=self.audience, tag_id=tag_id
                )
            except Problem as exc:
                if exc.status == 404:
                    raise self._audience_gone() from None
                raise BadBatchError(f"Mailchimp refused the tag update: {exc.title}: {exc.detail}") from None
            adding = {r.email: r for r in adds[segment]}
            for error in objects_in(as_object(answer).get("errors")):
                addresses = error.get("email_addresses")
                for address in addresses if isinstance(addresses, list) else []:
                    refused = adding.get(str(address).lower())
                    if refused is not None:
                        reason = f"tag {self.prefix + segment!r} not applied: {error.get('error', 'refused')}"
                        outcomes[refused.key] = Outcome.rejected(refused.key, reason)

    def _tag_id(self, segment: str, calls: Calls) -> int | None:
        """Return the tag of a marker that is no exported segment any more (only removals reach here).

        None when the tag is gone: removing people from a tag that does not exist does nothing.
        """
        calls.count += 1
        name = (self.prefix + segment).lower()
        search = self.api.call(
            "GET", "/lists/{list_id}/tag-search", params={"name": self.prefix + segment}, list_id=self.audience
        )
        for tag in objects_in(as_object(search).get("tags")):
            if str(tag.get("name", "")).lower() == name:
                tag_id = _int_id(tag.get("id"))
                if tag_id is None:
                    raise RetryableDestinationError(f"Mailchimp's tag search gave the tag {name!r} no numeric id")
                return self.found_tags.learn(segment, tag_id)
        return None

    def _archive(self, record: Record, calls: Calls) -> Outcome:
        """``on_exit: archive``: DELETE archives the member (never a permanent delete).

        See docs/providers/mailchimp.md#archive-and-permanent-delete.
        """
        calls.count += 1
        try:
            self.api.call("DELETE", MEMBER, list_id=self.audience, subscriber_hash=subscriber_hash(record.email))
        except Problem as exc:
            if exc.status == 404:
                return Outcome(record.key, OutcomeStatus.UPDATED)  # not on the audience any more
            return Outcome.rejected(record.key, f"not archived: {exc.detail or exc.title}")
        # The status just before, for the sync ledger: listed unsubscribed or cleaned, else its own record.
        before = self.held.get(record.email)
        return Outcome(record.key, OutcomeStatus.UPDATED, platform_status=before, archived=True)

    def _member(self, record: Record, *, status: str | None, tags: bool = False) -> dict[str, Any]:
        member: dict[str, Any] = {"email_address": record.email}
        if status is not None:
            member["status"] = status
        if record.fields:
            member["merge_fields"] = {self.field_tags.get(k, k): _merge_value(v) for k, v in record.fields.items()}
        if tags and record.add:  # tag names (docs/providers/mailchimp.md#tags-in-batch-members)
            member["tags"] = sorted(self.prefix + segment for segment in record.add)
        return member

    def _put_body(self, record: Record) -> dict[str, Any]:
        """Return the PUT body: no ``status``, ``status_if_new`` for people Mailchimp does not know.

        Someone listed unsubscribed or cleaned gets ``status_if_new: unsubscribed``: archived
        meanwhile, they come back unsubscribed, never subscribed.
        See docs/providers/mailchimp.md#add-or-update-a-member.
        """
        if self.context.repair:  # without status_if_new, a person gone since the check is refused, not created
            return self._member(record, status=None)
        held = self.held.get(record.email) in COMPLIANT_STATUSES
        return {**self._member(record, status=None), "status_if_new": "unsubscribed" if held else self.status_if_new}

    # -- reading members back (exports verify) ------------------------------------------------------
    def read_members(self, emails: Sequence[str]) -> Mapping[str, MemberState]:
        """Read each person's status, mapped fields and segment tags (see :class:`.members.MemberReader`)."""
        reader = MemberReader(
            self.api, self.audience, fields=self.context.mapped_fields, segments=self.context.segments,
            prefix=self.prefix, audience_gone=self._audience_gone,
        )
        return reader.read(emails)

    def _audience_gone(self) -> UnknownAudienceError:
        return UnknownAudienceError(
            f"Mailchimp audience {self.audience!r} no longer exists (deleted during the run?): "
            "fix --option audience_id; what was sent before is recorded"
        )


class _Write:
    """What one ``write_batch`` call finds out as it goes: its own, never shared with another batch."""

    __slots__ = ("absent", "calls", "outcomes", "records", "tagged")

    def __init__(self, records: Sequence[Record]) -> None:
        self.records = records
        self.calls = Calls()
        self.outcomes: dict[str, Outcome] = {}
        self.absent: set[str] = set()  # keys the batch create refused: not members, so no tags
        self.tagged: dict[str, set[str]] = {}  # key -> lower-cased tag names the batch create confirmed


class UpdatesJob(PendingJob):
    """A batch waiting on its ``/batches`` job of updates; then it tags and archives as ``write_batch`` would."""

    def __init__(self, writer: MailchimpWriter, write: _Write, updates: list[Record], job: BatchJob) -> None:
        self.writer, self.write, self.updates, self.job = writer, write, updates, job
        self.handed_back = write.calls.count  # the calls write_batch reported; result() reports the rest

    def next_poll(self) -> float | None:
        """Return the /batches job's seconds to the next poll; None once it is over."""
        return self.job.next_poll()

    def poll(self) -> None:
        """Ask Mailchimp once how the /batches job is doing."""
        self.job.poll()

    def result(self) -> BatchResult:
        """Each update's operation result as the outcome its single PUT would give, then the tags.

        See docs/providers/mailchimp.md#batch-results.
        """
        outcomes = self.write.outcomes
        try:
            results = self.job.results()
        except RetryableDestinationError as exc:
            outcomes.update({r.key: Outcome.retryable(r.key, str(exc)) for r in self.updates})
        else:
            for i, record in enumerate(self.updates):
                outcomes[record.key] = self.writer._batch_outcome(record, results.get(f"r{i}"))
        finished = self.writer._finish(self.write)
        finished.requests -= self.handed_back
        return finished


def _int_id(value: Any) -> int | None:
    """Return a numeric id from an answer (an integer, or text holding one); None for anything else."""
    if type(value) is int or isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return None
    return None


def _merge_value(value: Any) -> Any:
    """Merge values are strings or numbers; booleans are stringified (docs/providers/mailchimp.md#merge-values)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return value
    return str(value)


def _member_error(key: str, error: str, field: Any, field_message: Any) -> Outcome:
    """Return a per-member error from Mailchimp as an outcome (docs/providers/mailchimp.md#batch-subscribe-answer)."""
    text = error.strip() or "refused by Mailchimp"
    if field or field_message:
        text += f" ({field or 'field'}: {field_message or 'invalid'})"
    lowered = text.lower()
    if "compliance state" in lowered or "permanently deleted" in lowered:
        # docs/providers/mailchimp.md#compliance-state, docs/providers/mailchimp.md#archive-and-permanent-delete
        return Outcome(key, OutcomeStatus.SKIPPED, f"consent: {text}")
    return Outcome.rejected(key, text)


def _archived_skip(key: str) -> Outcome:
    """Return the outcome of an archived member segport will not re-add.

    See docs/providers/mailchimp.md#archived-and-unsubscribed-members.
    """
    reason = (
        "consent: member is archived at Mailchimp, which does not say whether they had unsubscribed; "
        "not re-added (segport did not archive them while subscribed; --option readd_archived=true re-adds "
        "archived members)"
    )
    return Outcome(key, OutcomeStatus.SKIPPED, reason, platform_status=ARCHIVED)
