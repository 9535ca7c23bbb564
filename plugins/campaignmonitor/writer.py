"""Writes batches to a Campaign Monitor list: subscribers, custom fields, segment membership.

Membership lives in one MultiSelectMany custom field (``segment_field``, default ``Segments``)
with one option per exported segment; a rule-based segment per exported segment selects on it,
so marketers can target it by name. Campaign Monitor has no endpoint to put a subscriber in a
segment (docs/providers/campaignmonitor.md#no-segment-membership-endpoint). Each ``import.json``
call carries up to 1,000 subscribers (docs/providers/campaignmonitor.md#import-size), so one per
batch at the engine's batch size: ``Resubscribe`` from the export (false by default, so nobody who
left is reactivated), autoresponders off, ``ConsentToTrack`` always sent. A profile's current
options are sent as values and options it left as ``Clear`` items, which is right whether Campaign
Monitor merges or replaces MultiSelectMany values (UNCONFIRMED:
docs/providers/campaignmonitor.md#custom-field-values).

Pre-flight reads (list, custom fields, segments) go out at once, so an up-to-date list costs one
round trip; writes follow only when something is missing.
"""

from __future__ import annotations

from concurrent.futures import Future
from functools import partial
from typing import Any, Mapping, Sequence

import requests

from segport import (
    BadBatchError,
    BatchResult,
    BatchWriter,
    ConfigError,
    MemberState,
    Outcome,
    OutcomeStatus,
    Record,
    RetryableDestinationError,
    RunContext,
    UnknownAudienceError,
)
from segport.http import one_line

from .api import INVALID_LIST, CampaignMonitorAPI, CMError

NAME = "Name"  # the subscriber's single name field (docs/providers/campaignmonitor.md#subscriber-name)
CONSENT = "ConsentToTrack"  # a record field when the export reads consent from a profile attribute
DEFAULT_SEGMENT_FIELD = "Segments"  # the MultiSelectMany field holding segment membership (spec.json default)
CONSENT_VALUES = {"yes": "Yes", "no": "No", "unchanged": "Unchanged"}
SCALAR_TYPES = {"Text", "Number", "Date", "MultiSelectOne", "Country", "USState"}
PARTIAL_IMPORT = 210  # HTTP 400, ResultData lists the failed rows (docs/providers/campaignmonitor.md#partial-import)
FIELD_EXISTS = 255  # "The Field Name already exists in this list" (docs/providers/campaignmonitor.md#custom-fields)
DUPLICATE_SEGMENT = 275  # "Duplicate Segment Title" (docs/providers/campaignmonitor.md#rule-segments)
IMPORT_LIMIT = 1000  # per import.json; more is code 209, none 212 (docs/providers/campaignmonitor.md#import-size)
# Pre-flight calls in flight at once (ApiClient.gather): no more than the destination's max_concurrency
# (4), the size of the engine's HTTPAdapter pool on the shared session. No limit is documented for list
# endpoints (docs/providers/campaignmonitor.md#rate-limits).
PREFLIGHT_WORKERS = 4
NOT_IN_LIST = 203  # "Subscriber not in list" (docs/providers/campaignmonitor.md#reading-subscribers-back)
# States whose people a repair run may write to (fields and the membership field; never a state).
WRITABLE_BY_REPAIR = frozenset({"active", "unconfirmed"})


def _objects(answer: Any) -> list[Mapping[str, Any]]:
    """Return the objects of an answer that should be a list of them; anything else holds none."""
    return [item for item in answer if isinstance(item, Mapping)] if isinstance(answer, list) else []


def consent_source(options: Mapping[str, Any]) -> str | None:
    """Return the profile attribute holding consent, or None when the option is a literal Yes/No/Unchanged."""
    value = str(options.get("consent_to_track", "Unchanged"))
    return None if value.lower() in CONSENT_VALUES else value


class CampaignMonitorWriter(BatchWriter):
    """One run's writer for one list."""

    def __init__(self, session: requests.Session, config: Mapping[str, Any], context: RunContext) -> None:
        super().__init__(session, config, context)
        self.api = CampaignMonitorAPI(session, config)
        options = context.options
        self.list_id = str(options["list_id"])
        # A repair run (context.repair) never resubscribes, whatever the export says.
        self.resubscribe = bool(options.get("resubscribe", False)) and not context.repair
        self.segment_field = str(options.get("segment_field", DEFAULT_SEGMENT_FIELD))
        literal = str(options.get("consent_to_track", "Unchanged"))
        self.consent = CONSENT_VALUES.get(literal.lower(), "Unchanged")
        self.consent_from_profile = consent_source(options) is not None
        self.field_keys: dict[str, str] = {}  # mapped field -> field key without brackets
        self.membership_key = ""

    # -- pre-flight ---------------------------------------------------------------------------
    def prepare(self) -> None:
        """Read list, custom fields and segments concurrently; then create what is missing, in order.

        Errors keep the order of the checks: the list first (an unknown list names the lists the
        credentials see, whatever the other reads answered), then the custom fields, then segments.
        A dry run makes the same reads and checks and notes what it would create instead.
        """
        rule_segments = bool(self.context.options.get("create_rule_segments", True))
        reads = ["/lists/{list_id}", "/lists/{list_id}/customfields"]
        if rule_segments:
            reads.append("/lists/{list_id}/segments")
        answers = self._concurrently([("GET", path, None) for path in reads])
        self._check_list(answers[0])
        fields = {str(f["FieldName"]).lower(): f for f in _objects(answers[1].result()) if f.get("FieldName")}
        self._check_mapped(fields)
        field = self._membership_field(fields)
        titles = {str(s.get("Title")) for s in _objects(answers[2].result())} if rule_segments else set()
        # The rules below refer to the field's key (docs/providers/campaignmonitor.md#rule-segments).
        self._ensure_membership_field(field)
        if rule_segments:
            self._ensure_rule_segments(titles)

    def _concurrently(self, calls: Sequence[tuple[str, str, Any]]) -> list[Future[Any]]:
        """Send ``(method, path, json)`` calls on this list at once; their futures once every one has answered."""
        return self.api.gather(
            [partial(self.api.call, method, path, json=body, list_id=self.list_id) for method, path, body in calls],
            parallel=PREFLIGHT_WORKERS,
        )

    def _check_list(self, answer: Future[Any]) -> None:
        try:
            answer.result()
        except CMError as exc:
            if exc.code != INVALID_LIST and exc.status != 404:
                raise
            raise UnknownAudienceError(
                f"Campaign Monitor list {self.list_id!r} does not exist for these credentials ({exc.call} answered "
                f"{exc.status}: {exc.cm_message or 'not found'}): fix --option list_id (the list's API ID)"
                f"{self._known_lists()}"
            ) from None

    def _known_lists(self) -> str:
        try:
            clients = self.api.call("GET", "/clients") or []
            found = [
                f"{item.get('ListID')} ({item.get('Name')})"
                for client in _objects(clients)
                if client.get("ClientID")
                for item in _objects(self.api.call("GET", "/clients/{client_id}/lists", client_id=client["ClientID"]))
            ]
        except CMError:
            return ""
        return one_line(f"; lists: {', '.join(found)}") if found else ""

    def _check_mapped(self, fields: Mapping[str, Mapping[str, Any]]) -> None:
        custom = [name for name in self.context.mapped_fields if name not in (NAME, CONSENT)]
        missing = sorted(name for name in custom if name.lower() not in fields)
        if missing:
            raise ConfigError(
                f"list {self.list_id} has no custom field {', '.join(missing)}: create it in Campaign "
                "Monitor (List > Custom fields) or change --map"
            )
        for name in custom:
            field = fields[name.lower()]
            data_type = field.get("DataType")
            if not isinstance(data_type, str) or data_type not in SCALAR_TYPES:
                raise ConfigError(
                    f"custom field {one_line(field['FieldName'])} is {one_line(field.get('DataType'))}, which takes "
                    "several values: map a Text, Number, Date or single-option field instead"
                )
            self.field_keys[name] = self._key(field)

    def _membership_field(self, fields: Mapping[str, Mapping[str, Any]]) -> Mapping[str, Any] | None:
        """Return the existing membership field (None when missing); refuse one of another type."""
        field = fields.get(self.segment_field.lower())
        if field is not None and field.get("DataType") != "MultiSelectMany":
            raise ConfigError(
                f"custom field {self.segment_field} is {one_line(field.get('DataType'))}, not MultiSelectMany: "
                "choose another --option segment_field or change the field's type"
            )
        return field

    def _ensure_membership_field(self, field: Mapping[str, Any] | None) -> None:
        """Create the field with every exported option, or add the options it lacks.

        See docs/providers/campaignmonitor.md#custom-fields and docs/providers/campaignmonitor.md#field-options.
        """
        wanted = list(dict.fromkeys(self.context.segments))
        if field is None and self.context.dry_run:
            self.would_create.append(
                f"custom field {self.segment_field} (MultiSelectMany) with options {', '.join(wanted)}"
            )
            return
        if field is None:
            field = self._create_membership_field(wanted)
            if field is None:
                return
        self.membership_key = self._key(field)
        options = field.get("FieldOptions")
        present = {o for o in options if isinstance(o, str)} if isinstance(options, list) else set()
        missing = [s for s in wanted if s not in present]
        if missing and self.context.dry_run:
            self.would_create.append(f"options {', '.join(missing)} of custom field {self.segment_field}")
        elif missing:
            self.api.call(
                "PUT",
                # The key with its brackets, as one segment (docs/providers/campaignmonitor.md#custom-fields).
                "/lists/{list_id}/customfields/{key}/options",
                json={"Options": missing, "KeepExistingOptions": True},
                list_id=self.list_id,
                key=field["Key"],
            )

    def _create_membership_field(self, wanted: list[str]) -> Mapping[str, Any] | None:
        """Create the membership field with the ``wanted`` options.

        Take its key and return None; or, when another run on this list (another export, another worker)
        created it since our read, return that field, to complete.
        """
        try:
            key = self.api.call(
                "POST",
                "/lists/{list_id}/customfields",
                list_id=self.list_id,
                json={
                    "FieldName": self.segment_field,
                    "DataType": "MultiSelectMany",
                    "Options": wanted,
                    "VisibleInPreferenceCenter": False,
                },
            )
        except CMError as exc:
            if exc.code != FIELD_EXISTS:
                raise
            answer = self.api.call("GET", "/lists/{list_id}/customfields", list_id=self.list_id)
            field = self._membership_field(
                {str(f["FieldName"]).lower(): f for f in _objects(answer) if f.get("FieldName")}
            )
            if field is None:
                raise
            return field
        if not isinstance(key, str) or not key.strip("[]"):
            raise RetryableDestinationError(
                f"Campaign Monitor created the custom field {self.segment_field} but answered no key: "
                "run the export again (it will find the field)"
            )
        self.membership_key = key.strip("[]")
        return None

    def _key(self, field: Mapping[str, Any]) -> str:
        """Return a custom field's key without brackets; a field without one cannot be written."""
        key = field.get("Key")
        if not isinstance(key, str) or not key.strip("[]"):
            raise RetryableDestinationError(
                f"Campaign Monitor listed the custom field {one_line(field.get('FieldName'))!r} without its key: "
                "run the export again later"
            )
        return key.strip("[]")

    def _ensure_rule_segments(self, titles: set[str]) -> None:
        """Create a rule segment per exported segment without one, concurrently.

        See docs/providers/campaignmonitor.md#rule-segments.
        """
        missing = [s for s in dict.fromkeys(self.context.segments) if s not in titles]
        if self.context.dry_run:
            self.would_create.extend(f"rule segment {s}" for s in missing)
            return
        if not missing:
            return
        rule_type = f"[{self.membership_key}]"  # the bracketed key (docs/providers/campaignmonitor.md#rule-segments)

        def body(segment: str) -> dict[str, Any]:
            rule = {"RuleType": rule_type, "Clause": f"EQUALS {segment}"}
            return {"Title": segment, "RuleGroups": [{"Rules": [rule]}]}

        created = self._concurrently([("POST", "/segments/{list_id}", body(s)) for s in missing])
        for answer in created:  # the first failure in the export's order
            try:
                answer.result()
            except CMError as exc:  # another run on this list created it since our read: it is there
                if exc.code != DUPLICATE_SEGMENT:
                    raise

    # -- writing ------------------------------------------------------------------------------
    def write_batch(self, records: Sequence[Record]) -> BatchResult:
        """One ``import.json`` per started 1,000 records; none for an empty batch.

        See docs/providers/campaignmonitor.md#import-size.
        """
        outcomes: list[Outcome] = []
        for start in range(0, len(records), IMPORT_LIMIT):
            outcomes += self._import(records[start : start + IMPORT_LIMIT])
        return BatchResult(outcomes, requests=self.requests_for(records))

    def requests_for(self, records: Sequence[Record]) -> int:
        """Return how many calls :meth:`write_batch` sends.

        One ``import.json`` per started 1,000 records (docs/providers/campaignmonitor.md#import-size).

        An expired OAuth token adds a refresh and one resend of the call (not counted, as before).
        """
        return -(-len(records) // IMPORT_LIMIT)

    def _import(self, records: Sequence[Record]) -> list[Outcome]:
        body = {
            "Subscribers": [self._subscriber(r) for r in records],
            "Resubscribe": self.resubscribe,
            # Capital R as the PHP and .NET clients spell it; Python and Ruby differ, false either way
            # (docs/providers/campaignmonitor.md#import-request).
            "QueueSubscriptionBasedAutoResponders": False,
            "RestartSubscriptionBasedAutoresponders": False,
        }
        try:
            answer = self.api.call("POST", "/subscribers/{list_id}/import", json=body, list_id=self.list_id)
        except CMError as exc:
            if exc.code == PARTIAL_IMPORT and isinstance(exc.result, dict):
                answer = exc.result
            elif exc.code == INVALID_LIST or exc.status == 404:
                raise UnknownAudienceError(
                    f"Campaign Monitor list {self.list_id!r} no longer exists (deleted during "
                    "the run?): fix --option list_id; what was sent before is recorded"
                ) from None
            else:
                raise BadBatchError(
                    f"Campaign Monitor refused the import on {exc.call} (code {exc.code}: {exc.cm_message})"
                ) from None
        failures = _objects(answer.get("FailureDetails")) if isinstance(answer, Mapping) else []
        failed = {str(f.get("EmailAddress", "")).strip().lower(): f for f in failures}
        outcomes = []
        for record in records:
            failure = failed.get(record.email)
            if failure is not None:
                reason = f"code {failure.get('Code')}: {failure.get('Message')}"
                outcomes.append(Outcome.rejected(record.key, reason))
            elif record.upsert and record.new:
                outcomes.append(Outcome(record.key, OutcomeStatus.CREATED))
            else:
                outcomes.append(Outcome(record.key, OutcomeStatus.UPDATED))
        return outcomes

    def _subscriber(self, record: Record) -> dict[str, Any]:
        subscriber: dict[str, Any] = {"EmailAddress": record.email, "ConsentToTrack": self._consent(record)}
        items: list[dict[str, Any]] = []
        if record.upsert:
            if NAME in record.fields:
                subscriber["Name"] = str(record.fields[NAME])
            for name, key in self.field_keys.items():
                value = record.fields.get(name, "")
                items.append(
                    {"Key": key, "Value": str(value), "Clear": True}
                    if value == ""
                    else {"Key": key, "Value": str(value)}
                )
        items += [{"Key": self.membership_key, "Value": s} for s in sorted(record.segments)]
        items += [{"Key": self.membership_key, "Value": s, "Clear": True} for s in sorted(record.remove)]
        if items:
            subscriber["CustomFields"] = items
        return subscriber

    # -- reading subscribers back (exports verify) --------------------------------------------------
    def read_members(self, emails: Sequence[str]) -> Mapping[str, MemberState]:
        """Read each person with ``GET /subscribers/{listid}.json?email=…``; Code 203: not in the list.

        One ``GET /lists/{listid}/customfields.json`` first checks the list and names the fields' keys
        (a subscriber's custom fields may come keyed by name or by key). Calls go out
        :data:`PREFLIGHT_WORKERS` at a time, under the credential's call governor.
        See docs/providers/campaignmonitor.md#reading-subscribers-back.
        """
        try:
            listed = self.api.call("GET", "/lists/{list_id}/customfields", list_id=self.list_id)
        except CMError as exc:
            if exc.code == INVALID_LIST or exc.status == 404:
                raise UnknownAudienceError(
                    f"Campaign Monitor list {self.list_id!r} does not exist for these credentials: fix --option list_id"
                ) from None
            raise
        names: dict[str, str] = {}  # a field's name or key, lower-cased, without brackets -> its name
        for item in _objects(listed):
            name = str(item.get("FieldName") or "")
            names[name.lower()] = name
            names[str(item.get("Key") or "").strip("[]").lower()] = name
        reads = [partial(self._read_subscriber, email, names) for email in emails]
        found: dict[str, MemberState] = {}
        for email, future in zip(emails, self.api.gather(reads, parallel=PREFLIGHT_WORKERS), strict=True):
            state = future.result()
            if state is not None:
                found[email] = state
        return found

    def _read_subscriber(self, email: str, names: Mapping[str, str]) -> MemberState | None:
        try:
            answer = self.api.call("GET", "/subscribers/{list_id}", params={"email": email}, list_id=self.list_id)
        except CMError as exc:
            if exc.code == NOT_IN_LIST:
                return None
            raise
        sub = answer if isinstance(answer, Mapping) else {}
        values: dict[str, list[str]] = {}
        for item in _objects(sub.get("CustomFields")):
            name = names.get(str(item.get("Key") or "").strip("[]").lower())
            if name is not None:
                values.setdefault(name.lower(), []).append(str(item.get("Value") or ""))
        fields: dict[str, Any] = {}
        for mapped in self.context.mapped_fields:
            if mapped == NAME:
                fields[NAME] = sub.get("Name") or ""
            elif mapped != CONSENT:
                fields[mapped] = ",".join(values.get(mapped.lower(), [""]))
        options = {v.lower() for v in values.get(self.segment_field.lower(), [])}
        markers = frozenset(s for s in self.context.segments if s.lower() in options)
        status = str(sub.get("State") or "").lower()
        return MemberState(status=status, subscribed=status in WRITABLE_BY_REPAIR, fields=fields, markers=markers)

    def _consent(self, record: Record) -> str:
        """ConsentToTrack is required on every row since API v3.2.

        See docs/providers/campaignmonitor.md#consent-to-track.
        """
        if not self.consent_from_profile:
            return self.consent
        return CONSENT_VALUES.get(str(record.fields.get(CONSENT, "")).strip().lower(), "Unchanged")
