"""Writes batches to a Campaign Monitor list: subscribers, custom fields, segment membership.

Membership lives in one MultiSelectMany custom field (``segment_field``, default ``Segments``)
with one option per exported segment; a rule-based segment per exported segment selects on it,
so marketers can target it by name. Campaign Monitor has no endpoint to put a subscriber in a
segment [B4]. Each batch is one ``import.json`` call of up to 1,000 subscribers [B2]:
``Resubscribe`` from the export (false by default, so nobody who left is reactivated),
autoresponders off, ``ConsentToTrack`` always sent. A profile's current options are sent as
values and options it left as ``Clear`` items, which is right whether Campaign Monitor merges or
replaces MultiSelectMany values (UNCONFIRMED [B2]).
"""

from __future__ import annotations

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
    RunContext,
    UnknownAudienceError,
)

from .api import INVALID_LIST, CampaignMonitorAPI, CMError, path_key

NAME = "Name"  # the subscriber's single name field [CS-NET B2]
CONSENT = "ConsentToTrack"  # a record field when the export reads consent from a profile attribute
CONSENT_VALUES = {"yes": "Yes", "no": "No", "unchanged": "Unchanged"}
SCALAR_TYPES = {"Text", "Number", "Date", "MultiSelectOne", "Country", "USState"}
PARTIAL_IMPORT = 210  # HTTP 400 whose ResultData lists only the failed rows [CS-PY B2]


def consent_source(options: Mapping[str, Any]) -> str | None:
    """The profile attribute holding consent, or None when the option is a literal Yes/No/Unchanged."""
    value = str(options.get("consent_to_track", "Unchanged"))
    return None if value.lower() in CONSENT_VALUES else value


class CampaignMonitorWriter(BatchWriter):
    """One run's writer for one list."""

    def __init__(self, session: requests.Session, config: Mapping[str, Any], context: RunContext) -> None:
        super().__init__(session, config, context)
        self.api = CampaignMonitorAPI(session, config)
        options = context.options
        self.list_id = str(options["list_id"])
        self.resubscribe = bool(options.get("resubscribe", False))
        self.segment_field = str(options.get("segment_field", "Segments"))
        literal = str(options.get("consent_to_track", "Unchanged"))
        self.consent = CONSENT_VALUES.get(literal.lower(), "Unchanged")
        self.consent_from_profile = consent_source(options) is not None
        self.field_keys: dict[str, str] = {}  # mapped field -> field key without brackets
        self.membership_key = ""

    # -- pre-flight ---------------------------------------------------------------------------
    def prepare(self) -> None:
        """List, mapped custom fields, the membership field and its options, rule segments."""
        self._check_list()
        fields = {str(f["FieldName"]).lower(): f for f in self.api.call("GET", f"/lists/{self.list_id}/customfields")}
        self._check_mapped(fields)
        self._ensure_membership_field(fields)
        if self.context.options.get("create_rule_segments", True):
            self._ensure_rule_segments()

    def _check_list(self) -> None:
        try:
            self.api.call("GET", f"/lists/{self.list_id}")
        except CMError as exc:
            if exc.code != INVALID_LIST and exc.status != 404:
                raise
            raise UnknownAudienceError(
                f"Campaign Monitor list {self.list_id!r} does not exist for these credentials "
                f"({exc.cm_message or 'not found'}): fix --option list_id (the list's API ID){self._known_lists()}"
            ) from None

    def _known_lists(self) -> str:
        try:
            clients = self.api.call("GET", "/clients") or []
            found = [
                f"{item['ListID']} ({item['Name']})"
                for client in clients
                for item in self.api.call("GET", f"/clients/{client['ClientID']}/lists") or []
            ]
        except (CMError, KeyError, TypeError):
            return ""
        return f"; lists: {', '.join(found)}" if found else ""

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
            if field.get("DataType") not in SCALAR_TYPES:
                raise ConfigError(
                    f"custom field {field['FieldName']} is {field.get('DataType')}, which takes several "
                    "values: map a Text, Number, Date or single-option field instead"
                )
            self.field_keys[name] = str(field["Key"]).strip("[]")

    def _ensure_membership_field(self, fields: Mapping[str, Mapping[str, Any]]) -> None:
        wanted = list(self.context.segments)
        field = fields.get(self.segment_field.lower())
        if field is None:
            key = self.api.call(
                "POST",
                f"/lists/{self.list_id}/customfields",
                json={
                    "FieldName": self.segment_field,
                    "DataType": "MultiSelectMany",
                    "Options": wanted,
                    "VisibleInPreferenceCenter": False,
                },
            )
            self.membership_key = str(key).strip("[]")
            return
        if field.get("DataType") != "MultiSelectMany":
            raise ConfigError(
                f"custom field {self.segment_field} is {field.get('DataType')}, not MultiSelectMany: "
                "choose another --option segment_field or change the field's type"
            )
        self.membership_key = str(field["Key"]).strip("[]")
        missing = [s for s in wanted if s not in set(field.get("FieldOptions") or [])]
        if missing:
            self.api.call(
                "PUT",
                f"/lists/{self.list_id}/customfields/{path_key(str(field['Key']))}/options",
                json={"Options": missing, "KeepExistingOptions": True},
            )

    def _ensure_rule_segments(self) -> None:
        titles = {str(s.get("Title")) for s in self.api.call("GET", f"/lists/{self.list_id}/segments") or []}
        for segment in self.context.segments:
            if segment in titles:
                continue
            rule = {"RuleType": f"[{self.membership_key}]", "Clause": f"EQUALS {segment}"}
            self.api.call(
                "POST", f"/segments/{self.list_id}", json={"Title": segment, "RuleGroups": [{"Rules": [rule]}]}
            )

    # -- writing ------------------------------------------------------------------------------
    def write_batch(self, records: Sequence[Record]) -> BatchResult:
        body = {
            "Subscribers": [self._subscriber(r) for r in records],
            "Resubscribe": self.resubscribe,
            "QueueSubscriptionBasedAutoResponders": False,  # capital R, as every official client [B2]
            "RestartSubscriptionBasedAutoresponders": False,
        }
        try:
            answer = self.api.call("POST", f"/subscribers/{self.list_id}/import", json=body) or {}
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
                    f"Campaign Monitor refused the import (code {exc.code}: {exc.cm_message})"
                ) from None
        failed = {str(f.get("EmailAddress", "")).strip().lower(): f for f in answer.get("FailureDetails") or []}
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
        return BatchResult(outcomes, requests=1)

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

    def _consent(self, record: Record) -> str:
        """ConsentToTrack is required on every row since API v3.2 [CS-PY B2]."""
        if not self.consent_from_profile:
            return self.consent
        return CONSENT_VALUES.get(str(record.fields.get(CONSENT, "")).strip().lower(), "Unchanged")
