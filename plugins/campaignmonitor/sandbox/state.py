"""State and rules of the Campaign Monitor sandbox: one client, one list, its subscribers, custom fields, segments.

Everything here is plain Python behind one lock; :mod:`segport_campaignmonitor.sandbox` puts HTTP in
front of it. Comments point at the platform facts in ``docs/providers/campaignmonitor.md``; the error
codes and texts are those Campaign Monitor lists on its API pages (sources named there).
Methods that answer the API raise :class:`ApiError`, which the server renders as ``{"Code", "Message"}``.
"""

from __future__ import annotations

import math
import random
import re
import threading
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any, Callable, Iterable, Mapping

JSON = dict[str, Any]
MAX_IMPORT = 1000  # subscribers per import call (docs/providers/campaignmonitor.md#import-size)
MAX_VALUE_LENGTH = 250  # custom field values (docs/providers/campaignmonitor.md#custom-field-values)
# Subscriber states (docs/providers/campaignmonitor.md#subscriber-states).
STATES = ("Active", "Unconfirmed", "Unsubscribed", "Bounced", "Deleted")
# Custom field data types (docs/providers/campaignmonitor.md#custom-fields).
DATA_TYPES = ("Text", "Number", "MultiSelectOne", "MultiSelectMany", "Date", "Country", "USState")
OPTION_TYPES = ("MultiSelectOne", "MultiSelectMany")
# ConsentToTrack values, in any case (docs/providers/campaignmonitor.md#consent-to-track).
CONSENT = {"yes": "Yes", "no": "No", "unchanged": "Unchanged"}
# Inactive states refused unless Resubscribe is true, the row left unchanged
# (docs/providers/campaignmonitor.md#row-failure-codes).
INACTIVE_CODES = {
    "Deleted": (205, "Is Deleted"),
    "Unsubscribed": (206, "Is Unsubscribed"),
    "Bounced": (207, "Is Bounced"),
    "Unconfirmed": (208, "Is Unconfirmed"),
}
ORDER_FIELDS = ("email", "name", "date")  # (docs/providers/campaignmonitor.md#paged-results)
DATE_MIN, DATE_MAX = date(1900, 1, 1), date(2076, 6, 6)  # (docs/providers/campaignmonitor.md#custom-field-values)
_EMAIL_RE = re.compile(
    r"^[^@\s\"(),:;<>\[\]\\]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$"
)
_DATE_RE = re.compile(r"^(\d{4})[-/](\d{1,2})[-/](\d{1,2})(?:[ T].*)?$")
_SINCE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}(?: \d{2}:\d{2}(?::\d{2})?)?$")
CLAUSE_VERBS = ("EQUALS", "NOT_EQUALS")  # with an object; PROVIDED / NOT_PROVIDED stand alone
DESERIALIZE = "Failed to deserialize your request"


def now_cm() -> str:
    """Return the current UTC time as Campaign Monitor prints it (``2010-10-25 10:28:00``).

    See docs/providers/campaignmonitor.md#subscriber-states.
    """
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def valid_email(email: str) -> bool:
    """Return whether ``email`` looks like an address (the sandbox's own check)."""
    return bool(_EMAIL_RE.match(email.strip()))


def field_key(name: str) -> str:
    """``[`` + name lower-cased without spaces + ``]``; the derivation is UNCONFIRMED.

    See docs/providers/campaignmonitor.md#custom-fields.
    """
    return "[" + re.sub(r"\s+", "", name).lower() + "]"


def _norm_key(key: str) -> str:
    """Return the field key of a key as given in a subscriber body.

    Brackets are optional (UNCONFIRMED), any case, spaces ignored.

    See docs/providers/campaignmonitor.md#custom-field-values.
    """
    return field_key(key.strip().removeprefix("[").removesuffix("]"))


class ApiError(Exception):
    """An API answer: HTTP status plus the ``{"Code", "Message"}`` envelope (+ ``ResultData``).

    See docs/providers/campaignmonitor.md#error-envelope.
    """

    def __init__(self, status: int, code: int, message: str, result_data: Any = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.result_data = status, code, message, result_data

    def body(self) -> JSON:
        """Return the ``{"Code", "Message"}`` envelope, with ``ResultData`` when there is some."""
        doc: JSON = {"Code": self.code, "Message": self.message}
        if self.result_data is not None:
            doc["ResultData"] = self.result_data
        return doc


def bad_request(message: str = DESERIALIZE) -> ApiError:
    """400 Code 400: a body that is not the expected JSON shape (the sandbox's own message)."""
    return ApiError(400, 400, message)


def invalid_list() -> ApiError:
    """Return the answer to a list id the client does not have."""
    # Code 101; HTTP status UNCONFIRMED (400 vs 401), the sandbox answers 400
    # (docs/providers/campaignmonitor.md#invalid-list).
    return ApiError(400, 101, "Invalid ListID")


def invalid_segment() -> ApiError:
    """Return the answer to an unknown segment id."""
    return ApiError(400, 271, "Invalid SegmentID")  # (docs/providers/campaignmonitor.md#rule-segments)


def not_in_list() -> ApiError:
    """Return the answer to an address that is not a subscriber of the list."""
    # Code 203 (docs/providers/campaignmonitor.md#update-unsubscribe-and-delete).
    return ApiError(400, 203, "Subscriber Not In List")


@dataclass(slots=True)
class CustomField:
    """A custom field of the list, with its options for a multi-option type."""

    name: str
    key: str  # "[fieldname]"
    data_type: str
    options: list[str] = field(default_factory=list)
    visible: bool = True


@dataclass(slots=True)
class Subscriber:
    """A subscriber of the list: address, name, state, consent and custom field values."""

    email: str
    name: str
    state: str
    consent: str  # "Yes" | "No"
    date: str  # when the current state began
    joined: str
    fields: dict[str, Any] = field(default_factory=dict)  # field key -> str, or list[str] for MultiSelectMany


@dataclass(slots=True)
class Rule:
    """One compiled segment rule over a custom field."""

    key: str  # the custom field key
    verb: str  # EQUALS | NOT_EQUALS | PROVIDED | NOT_PROVIDED
    operand: str


@dataclass(slots=True)
class Segment:
    """A rule segment: its rule groups as the API shows them and as compiled."""

    segment_id: str
    title: str
    rule_groups: list[JSON]  # as shown by the API: [{"Rules": [{"RuleType", "Clause"}]}]
    compiled: list[list[Rule]]


@dataclass(frozen=True, slots=True)
class Paging:
    """``page``, ``pagesize`` (10–1000, default 1000), ``orderfield``, ``orderdirection``, ``date``.

    See docs/providers/campaignmonitor.md#paged-results.
    """

    page: int = 1
    size: int = 1000
    order: str = "email"  # official clients default to email/asc
    direction: str = "asc"
    since: str = ""


def parse_paging(query: Mapping[str, str]) -> Paging:
    """Page parameters; out-of-range values answer 800–803, not clamped.

    See docs/providers/campaignmonitor.md#paged-results.
    """
    try:
        page = int(query.get("page") or 1)
    except ValueError:
        page = 0
    if page < 1:
        raise ApiError(400, 800, "Invalid page number")
    try:
        size = int(query.get("pagesize") or 1000)
    except ValueError:
        size = 0
    if not 10 <= size <= 1000:
        raise ApiError(400, 801, "Invalid page size")
    order = (query.get("orderfield") or "email").lower()
    if order not in ORDER_FIELDS:
        raise ApiError(400, 802, "Invalid order field")
    direction = (query.get("orderdirection") or "asc").lower()
    if direction not in ("asc", "desc"):
        raise ApiError(400, 803, "Invalid order direction")
    since = (query.get("date") or "").strip()
    if since and not _SINCE_RE.match(since):
        raise ApiError(400, 5, "Invalid Date")  # (docs/providers/campaignmonitor.md#paged-results)
    return Paging(page, size, order, direction, since)


class _RowError(Exception):
    """A per-subscriber failure (one FailureDetails row, or the whole answer of a single add)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def _consent(value: Any) -> str:
    """``Yes``/``No``/``Unchanged`` case-insensitively; missing -> 214, invalid -> 215.

    See docs/providers/campaignmonitor.md#consent-to-track.
    """
    if value is None or value == "":
        raise _RowError(214, "Please provide a consent to track value")
    canonical = CONSENT.get(value.lower()) if isinstance(value, str) else None
    if canonical is None:
        raise _RowError(215, "Please provide a valid consent to track value")
    return canonical


def _parse_date(value: str) -> str | None:
    """``YYYY-MM-DD`` (or ``/``) within 1900-01-01..2076-06-06, else None (the value is ignored).

    See docs/providers/campaignmonitor.md#custom-field-values.
    """
    match = _DATE_RE.match(value.strip())
    if match is None:
        return None
    try:
        day = date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return None
    return day.isoformat() if DATE_MIN <= day <= DATE_MAX else None


def _number(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _is_true(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


class SandboxState:
    """One Campaign Monitor account with one client and one list. Thread-safe: one lock guards everything."""

    def __init__(self, *, seed: int | None = None, api_key: str | None = None) -> None:
        rng = random.Random(seed) if seed is not None else random.SystemRandom()
        generated = f"{rng.getrandbits(128):032x}"
        self.api_key = api_key or generated
        self.client_id = f"{rng.getrandbits(128):032x}"  # 32 hex (docs/providers/campaignmonitor.md#clients-and-lists)
        self.list_id = f"{rng.getrandbits(128):032x}"  # 32 hex (docs/providers/campaignmonitor.md#clients-and-lists)
        self._id_seed = rng.getrandbits(64)
        self.lock = threading.Lock()
        self.reset()

    # -- lifecycle and test hooks ---------------------------------------------------------------

    def reset(self) -> None:
        """Forget every subscriber, custom field, segment and suppression; restore the list."""
        with self.lock:
            self.deleted = False
            self.subscribers: dict[str, Subscriber] = {}  # lower-cased email -> subscriber
            self.fields: dict[str, CustomField] = {}  # key -> field
            self.segments: dict[str, Segment] = {}  # segment id -> segment
            self.suppressed: set[str] = set()  # the client's suppression list, lower-cased
            self.ids = random.Random(self._id_seed)

    def delete_list(self) -> None:
        """Delete the list (its segments with it): later calls naming it answer Invalid ListID."""
        with self.lock:
            self.deleted = True
            self.segments.clear()

    def suppress(self, emails: Iterable[str]) -> None:
        """Add addresses to the client's suppression list."""
        with self.lock:
            self.suppressed.update(e.strip().lower() for e in emails)

    def seed_subscriber(
        self, email: str, state: str = "Active", name: str = "", custom_fields: Mapping[str, Any] | None = None
    ) -> JSON:
        """Create or overwrite a subscriber bypassing the API's rules (for pre-existing people).

        ``custom_fields`` maps a field name or key to a value (a list of options for MultiSelectMany).
        """
        if state not in STATES:
            raise ValueError(f"state must be one of {', '.join(STATES)}")
        if not valid_email(email):
            raise ValueError(f"invalid email address {email!r}")
        with self.lock:
            values: dict[str, Any] = {}
            for given, value in (custom_fields or {}).items():
                fld = self._field_for(given)
                if fld is None:
                    raise ValueError(f"unknown custom field {given!r}")
                many = [value] if isinstance(value, str) or fld.data_type != "MultiSelectMany" else list(value)
                if fld.data_type in OPTION_TYPES and any(v not in fld.options for v in many):
                    raise ValueError(f"{given!r}: values must be among {fld.options}")
                values[fld.key] = [str(v) for v in many] if fld.data_type == "MultiSelectMany" else str(value)
                if values[fld.key] in ([], ""):
                    values[fld.key] = None
            key = email.strip().lower()
            sub = self.subscribers.get(key)
            if sub is None:
                now = now_cm()
                sub = self.subscribers[key] = Subscriber(email.strip(), name, state, "No", now, now)
            else:
                self._set_state(sub, state)
                sub.name = name or sub.name
            for fkey, fvalue in values.items():
                if fvalue is None:
                    sub.fields.pop(fkey, None)
                else:
                    sub.fields[fkey] = fvalue
            return self._subscriber_json(sub)

    # -- dumps ------------------------------------------------------------------------------------

    def summary(self) -> JSON:
        """``{"list", "subscribers": {State: n}, "segments field options": {option: n}, "rule segments"}``.

        Option counts cover every MultiSelectMany field (subscribers of any state holding the option);
        with more than one such field, options are named ``"<FieldName>: <option>"``.
        """
        with self.lock:
            states: dict[str, int] = {}
            for sub in self.subscribers.values():
                states[sub.state] = states.get(sub.state, 0) + 1
            many = [f for f in self.fields.values() if f.data_type == "MultiSelectMany"]
            options: dict[str, int] = {}
            for fld in many:
                prefix = f"{fld.name}: " if len(many) > 1 else ""
                counts = dict.fromkeys(fld.options, 0)
                for sub in self.subscribers.values():
                    for value in sub.fields.get(fld.key, ()):
                        counts[value] = counts.get(value, 0) + 1
                options.update({prefix + option: n for option, n in counts.items()})
            return {
                "list": self.list_id,
                "subscribers": {s: states[s] for s in STATES if s in states},
                "segments field options": options,
                "rule segments": [s.title for s in self.segments.values()],
            }

    def dump(self) -> JSON:
        """Return the whole state as JSON, for ``/_sandbox/state``.

        Its shape: ``{"client", "lists": {list_id: {"details", "deleted", "custom_fields", "subscribers",
        "segments"}}, "suppression_list"}``; subscribers are keyed by lower-cased email, custom fields by key.
        """
        with self.lock:
            subscribers = {
                key: {
                    "EmailAddress": s.email,
                    "Name": s.name,
                    "State": s.state,
                    "ConsentToTrack": s.consent,
                    "CustomFields": {
                        self.fields[k].name: list(v) if isinstance(v, list) else v
                        for k, v in s.fields.items()
                        if k in self.fields
                    },
                }
                for key, s in self.subscribers.items()
            }
            fields = {
                f.key: {
                    "FieldName": f.name,
                    "DataType": f.data_type,
                    "FieldOptions": list(f.options),
                    "VisibleInPreferenceCenter": f.visible,
                }
                for f in self.fields.values()
            }
            segments = [
                {"SegmentID": s.segment_id, "Title": s.title, "RuleGroups": s.rule_groups}
                for s in self.segments.values()
            ]
            return {
                "client": {"ClientID": self.client_id, "Name": "Sandbox client"},
                "lists": {
                    self.list_id: {
                        "details": self._list_json(),
                        "deleted": self.deleted,
                        "custom_fields": fields,
                        "subscribers": subscribers,
                        "segments": segments,
                    }
                },
                "suppression_list": sorted(self.suppressed),
            }

    # -- clients and lists (docs/providers/campaignmonitor.md#clients-and-lists) ------------------------

    def clients(self) -> list[JSON]:
        """Answer ``GET /clients.json``: the one client."""
        # One client (docs/providers/campaignmonitor.md#clients-and-lists).
        return [{"ClientID": self.client_id, "Name": "Sandbox client"}]

    def client_lists(self, client_id: str) -> list[JSON]:
        """Answer ``GET /clients/{id}/lists.json``: the one list, unless it was deleted."""
        with self.lock:
            self._check_client(client_id)
            return [] if self.deleted else [{"ListID": self.list_id, "Name": "Sandbox list"}]

    def suppress_for_client(self, client_id: str, body: JSON) -> None:
        """``POST /clients/{id}/suppress.json`` ``{"EmailAddresses": [...]}``.

        See docs/providers/campaignmonitor.md#update-unsubscribe-and-delete.
        """
        emails = body.get("EmailAddresses")
        if not isinstance(emails, list) or not all(isinstance(e, str) for e in emails):
            raise bad_request()
        with self.lock:
            self._check_client(client_id)
        self.suppress(emails)

    def list_details(self, list_id: str) -> JSON:
        """Answer ``GET /lists/{id}.json``: the list's details."""
        with self.lock:
            self._check_list(list_id)
            return self._list_json()

    # -- custom fields (docs/providers/campaignmonitor.md#custom-fields) --------------------------------

    def custom_fields(self, list_id: str) -> list[JSON]:
        """Answer ``GET /lists/{id}/customfields.json``: every custom field of the list."""
        with self.lock:
            self._check_list(list_id)
            return [
                {
                    "FieldName": f.name,
                    "Key": f.key,
                    "DataType": f.data_type,
                    "FieldOptions": list(f.options),
                    "VisibleInPreferenceCenter": f.visible,
                }
                for f in self.fields.values()
            ]

    def create_custom_field(self, list_id: str, body: JSON) -> str:
        """``{"FieldName", "DataType", "Options"?, "VisibleInPreferenceCenter"?}`` -> the new key.

        See docs/providers/campaignmonitor.md#custom-fields.
        """
        name, data_type, options = body.get("FieldName"), body.get("DataType"), body.get("Options")
        if options is not None and (not isinstance(options, list) or not all(isinstance(o, str) for o in options)):
            raise bad_request()
        with self.lock:
            self._check_list(list_id)
            if not isinstance(name, str) or not name.strip():
                raise ApiError(400, 254, "Invalid Field Name")  # (docs/providers/campaignmonitor.md#custom-fields)
            name = name.strip()
            key = field_key(name)
            # Same name, or a name that derives the same key (UNCONFIRMED): 255
            # (docs/providers/campaignmonitor.md#custom-fields).
            if key in self.fields or any(f.name.lower() == name.lower() for f in self.fields.values()):
                raise ApiError(400, 255, "The Field Name already exists in this list")
            if data_type not in DATA_TYPES:
                raise ApiError(400, 259, "Data type is incorrect")  # (docs/providers/campaignmonitor.md#custom-fields)
            if options and data_type not in OPTION_TYPES:
                raise ApiError(400, 256, "Options defined for Text or Number Field")
            unique = list(dict.fromkeys(options or []))
            if data_type in OPTION_TYPES and not unique:
                raise ApiError(400, 257, "No options defined for Multi-Valued field")
            visible = body.get("VisibleInPreferenceCenter", True)
            assert isinstance(data_type, str)
            self.fields[key] = CustomField(name, key, data_type, unique, visible is not False)
            return key

    def update_field_options(self, list_id: str, key: str, body: JSON) -> None:
        """``PUT …/customfields/{key}/options.json`` ``{"Options", "KeepExistingOptions"}``.

        With ``KeepExistingOptions: false`` the options are replaced and subscribers lose values that are no
        longer options (effect on stored values UNCONFIRMED). Ending with no options answers 257 (UNCONFIRMED).
        See docs/providers/campaignmonitor.md#field-options.
        """
        options = body.get("Options")
        if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
            raise bad_request()
        keep = _is_true(body.get("KeepExistingOptions", False))
        with self.lock:
            self._check_list(list_id)
            fld = self._field_by_key(key)
            if fld.data_type not in OPTION_TYPES:
                raise ApiError(400, 256, "Options defined for Text or Number Field")
            merged = list(dict.fromkeys([*fld.options, *options] if keep else options))
            if not merged:
                raise ApiError(400, 257, "No options defined for Multi-Valued field")
            fld.options = merged
            if not keep:
                allowed = set(merged)
                for sub in self.subscribers.values():
                    value = sub.fields.get(fld.key)
                    if isinstance(value, list):
                        kept = [v for v in value if v in allowed]
                        if kept:
                            sub.fields[fld.key] = kept
                        else:
                            del sub.fields[fld.key]
                    elif value is not None and value not in allowed:
                        del sub.fields[fld.key]

    def delete_custom_field(self, list_id: str, key: str) -> None:
        """``DELETE /lists/{id}/customfields/{key}.json``; values go with the field."""
        with self.lock:
            self._check_list(list_id)
            fld = self._field_by_key(key)
            del self.fields[fld.key]
            for sub in self.subscribers.values():
                sub.fields.pop(fld.key, None)

    # -- subscribers (docs/providers/campaignmonitor.md#import-request) -------------------------------

    def import_subscribers(self, list_id: str, body: JSON, refuse: Callable[[str], bool] | None = None) -> JSON:
        """``POST /subscribers/{id}/import.json`` (docs/providers/campaignmonitor.md#import-request).

        Returns the 201 result when every row succeeded; raises the 400 Code 210 envelope with the same
        result as ``ResultData`` when some failed (rows not in FailureDetails did succeed). ``refuse`` (fault
        injection): valid addresses it names fail with code 204 "In Suppression List", as if suppressed.
        """
        rows = body.get("Subscribers")
        if rows is not None and not isinstance(rows, list):
            raise bad_request()
        rows = rows or []
        for row in rows:
            if not isinstance(row, dict) or not isinstance(row.get("CustomFields") or [], list):
                raise bad_request()
            if not all(isinstance(item, dict) for item in row.get("CustomFields") or []):
                raise bad_request()
        resubscribe = _is_true(body.get("Resubscribe", False))
        with self.lock:
            self._check_list(list_id)
            if len(rows) > MAX_IMPORT:  # (docs/providers/campaignmonitor.md#import-size)
                raise ApiError(
                    400, 209, "Too many subscribers in this batch. You can only add 1000 subscribers in one call"
                )
            if not rows:
                # Code 212 (docs/providers/campaignmonitor.md#import-size).
                raise ApiError(400, 212, "No subscribers were provided in this batch")
            # Duplicates: listed in DuplicateEmailsInSubmission, the last occurrence wins (which one wins is the
            # sandbox's choice; docs/providers/campaignmonitor.md#row-failure-codes only says they are listed).
            keys = [self._row_email(row).lower() or f"\0{i}" for i, row in enumerate(rows)]  # no email: unique
            last = {key: i for i, key in enumerate(keys)}
            duplicates: list[str] = []
            counted: set[str] = set()
            for i, key in enumerate(keys):
                if last[key] != i and key not in counted:
                    counted.add(key)
                    duplicates.append(self._row_email(rows[last[key]]))
            failures: list[JSON] = []
            new = existing = 0
            for i in last.values():
                row = rows[i]
                try:
                    email = self._row_email(row)
                    if refuse is not None and valid_email(email) and refuse(email):
                        raise _RowError(204, "In Suppression List")
                    is_new = self._upsert_row(row, resubscribe)
                except _RowError as err:
                    failures.append({"EmailAddress": self._row_email(row), "Code": err.code, "Message": err.message})
                    continue
                new, existing = new + is_new, existing + (not is_new)
            result = {
                "FailureDetails": failures,
                "TotalUniqueEmailsSubmitted": len(last),
                "TotalExistingSubscribers": existing,
                "TotalNewSubscribers": new,
                "DuplicateEmailsInSubmission": duplicates,
            }
        if failures:  # HTTP 400 + Code 210 + ResultData (docs/providers/campaignmonitor.md#partial-import)
            raise ApiError(400, 210, "Subscriber Import had some failures", result)
        return result

    def add_subscriber(self, list_id: str, body: JSON) -> str:
        """``POST /subscribers/{id}.json`` upsert; 201 + the email as a JSON string.

        See docs/providers/campaignmonitor.md#add-a-subscriber.
        """
        self._check_row_shape(body)
        with self.lock:
            self._check_list(list_id)
            try:
                self._upsert_row(body, _is_true(body.get("Resubscribe", False)))
            except _RowError as err:
                raise ApiError(400, err.code, err.message) from None
            return self._row_email(body)

    def update_subscriber(self, list_id: str, email: str, body: JSON) -> None:
        """``PUT /subscribers/{id}.json?email=<current>``: same body, may change the address.

        203 when ``email`` is not in the list, 201 "Already subscribed" when the new address is, 211 when the
        new address is invalid. Inactive subscribers are updated in place unless ``Resubscribe``.
        See docs/providers/campaignmonitor.md#update-unsubscribe-and-delete.
        """
        self._check_row_shape(body)
        with self.lock:
            self._check_list(list_id)
            sub = self.subscribers.get(email.strip().lower())
            if sub is None:
                raise not_in_list()
            new_email = body.get("EmailAddress", sub.email)
            if not isinstance(new_email, str) or not valid_email(new_email):
                raise ApiError(400, 211, "Invalid New Email Address")
            new_key = new_email.strip().lower()
            if new_key != sub.email.lower() and new_key in self.subscribers:
                raise ApiError(400, 201, "Already subscribed")
            try:
                consent = _consent(body.get("ConsentToTrack"))
            except _RowError as err:
                raise ApiError(400, err.code, err.message) from None
            del self.subscribers[sub.email.lower()]
            sub.email = new_email.strip()
            self.subscribers[new_key] = sub
            if _is_true(body.get("Resubscribe", False)):
                self._set_state(sub, "Active")
                self.suppressed.discard(new_key)
            self._apply(sub, body, consent)

    def get_subscriber(self, list_id: str, email: str) -> JSON:
        """``GET /subscribers/{id}.json?email=`` (docs/providers/campaignmonitor.md#subscriber-states)."""
        with self.lock:
            self._check_list(list_id)
            sub = self.subscribers.get(email.strip().lower())
            if sub is None:
                raise not_in_list()
            return self._subscriber_json(sub)

    def unsubscribe(self, list_id: str, body: JSON) -> None:
        """Answer ``POST /subscribers/{id}/unsubscribe.json`` ``{"EmailAddress"}``.

        See docs/providers/campaignmonitor.md#update-unsubscribe-and-delete.

        Active and Unconfirmed subscribers become Unsubscribed; other states are left alone (UNCONFIRMED).
        One list, so ``UnsubscribeSetting: AllClientLists`` has nothing more to reach.
        """
        email = body.get("EmailAddress")
        if not isinstance(email, str):
            raise bad_request()
        with self.lock:
            self._check_list(list_id)
            sub = self.subscribers.get(email.strip().lower())
            if sub is None:
                raise not_in_list()
            if sub.state in ("Active", "Unconfirmed"):
                self._set_state(sub, "Unsubscribed")

    def delete_subscriber(self, list_id: str, email: str) -> None:
        """``DELETE /subscribers/{id}.json?email=`` moves the subscriber to Deleted.

        See docs/providers/campaignmonitor.md#update-unsubscribe-and-delete.
        """
        with self.lock:
            self._check_list(list_id)
            sub = self.subscribers.get(email.strip().lower())
            if sub is None:
                raise not_in_list()
            self._set_state(sub, "Deleted")

    def list_subscribers(self, list_id: str, state: str, paging: Paging) -> JSON:
        """``GET /lists/{id}/{active|unsubscribed|deleted|bounced|unconfirmed}.json`` paged.

        See docs/providers/campaignmonitor.md#paged-results.
        """
        with self.lock:
            self._check_list(list_id)
            return self._page([s for s in self.subscribers.values() if s.state == state], paging)

    # -- segments (docs/providers/campaignmonitor.md#rule-segments) -------------------------------------

    def list_segments(self, list_id: str) -> list[JSON]:
        """Answer ``GET /lists/{id}/segments.json``: every segment of the list."""
        with self.lock:
            self._check_list(list_id)
            return [
                {"ListID": self.list_id, "SegmentID": s.segment_id, "Title": s.title} for s in self.segments.values()
            ]

    def create_segment(self, list_id: str, body: JSON) -> str:
        """Answer ``POST /segments/{listid}.json`` ``{"Title", "RuleGroups"}`` with the segment id.

        See docs/providers/campaignmonitor.md#rule-segments.

        A segment without rule groups selects every Active subscriber (UNCONFIRMED).
        """
        with self.lock:
            self._check_list(list_id)
            title = self._check_title(body.get("Title"), None)
            groups, compiled = self._compile(body.get("RuleGroups") or [])
            segment_id = f"{self.ids.getrandbits(128):032x}"
            self.segments[segment_id] = Segment(segment_id, title, groups, compiled)
            return segment_id

    def get_segment(self, segment_id: str) -> JSON:
        """``{ActiveSubscribers, RuleGroups, ListID, SegmentID, Title}``; the count is computed now.

        See docs/providers/campaignmonitor.md#rule-segments.
        """
        with self.lock:
            seg = self._segment(segment_id)
            active = sum(1 for s in self.subscribers.values() if s.state == "Active" and self._matches(s, seg))
            return {
                "ActiveSubscribers": active,
                "RuleGroups": seg.rule_groups,
                "ListID": self.list_id,
                "SegmentID": seg.segment_id,
                "Title": seg.title,
            }

    def update_segment(self, segment_id: str, body: JSON) -> None:
        """``PUT /segments/{id}.json``: new title; ``RuleGroups``, when given, replace the rules (UNCONFIRMED)."""
        with self.lock:
            seg = self._segment(segment_id)
            title = self._check_title(body.get("Title"), seg)
            if body.get("RuleGroups") is not None:
                seg.rule_groups, seg.compiled = self._compile(body["RuleGroups"])
            seg.title = title

    def add_rule_group(self, segment_id: str, body: JSON) -> None:
        """``POST /segments/{id}/rules.json`` adds one rule group ``{"Rules": [...]}``.

        See docs/providers/campaignmonitor.md#rule-segments.
        """
        with self.lock:
            seg = self._segment(segment_id)
            groups, compiled = self._compile([body])
            seg.rule_groups += groups
            seg.compiled += compiled

    def clear_rules(self, segment_id: str) -> None:
        """``DELETE /segments/{id}/rules.json`` (docs/providers/campaignmonitor.md#rule-segments)."""
        with self.lock:
            seg = self._segment(segment_id)
            seg.rule_groups, seg.compiled = [], []

    def delete_segment(self, segment_id: str) -> None:
        """Answer ``DELETE /segments/{id}.json``: the segment goes."""
        with self.lock:
            del self.segments[self._segment(segment_id).segment_id]

    def segment_active(self, segment_id: str, paging: Paging) -> JSON:
        """``GET /segments/{id}/active.json`` paged, computed now over Active subscribers.

        See docs/providers/campaignmonitor.md#rule-segments.
        """
        with self.lock:
            seg = self._segment(segment_id)
            return self._page(
                [s for s in self.subscribers.values() if s.state == "Active" and self._matches(s, seg)], paging
            )

    # -- internals (call with the lock held) ----------------------------------------------------------

    def _check_client(self, client_id: str) -> None:
        if client_id != self.client_id:
            # 401 for unknown or unowned ids (docs/providers/campaignmonitor.md#error-envelope)
            raise ApiError(401, 102, "Invalid ClientID")

    def _check_list(self, list_id: str) -> None:
        if self.deleted or list_id != self.list_id:
            raise invalid_list()

    def _segment(self, segment_id: str) -> Segment:
        seg = self.segments.get(segment_id)
        if seg is None:
            raise invalid_segment()
        return seg

    def _field_for(self, given: Any) -> CustomField | None:
        """Return the field a subscriber body means by ``Key`` (bracketed or not, any case: UNCONFIRMED).

        See docs/providers/campaignmonitor.md#custom-field-values.
        """
        if not isinstance(given, str) or not given.strip():
            return None
        return self.fields.get(_norm_key(given))

    def _field_by_key(self, key: str) -> CustomField:
        """Return the field addressed by its bracketed key in a URL; 253 otherwise.

        See docs/providers/campaignmonitor.md#custom-fields.
        """
        fld = self.fields.get(key.lower()) if key.startswith("[") and key.endswith("]") else None
        if fld is None:
            raise ApiError(400, 253, "Invalid Key. Keys must be surrounded with [ ]")
        return fld

    @staticmethod
    def _row_email(row: JSON) -> str:
        email = row.get("EmailAddress")
        return email.strip() if isinstance(email, str) else ""

    @staticmethod
    def _check_row_shape(body: JSON) -> None:
        items = body.get("CustomFields") or []
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise bad_request()

    def _upsert_row(self, row: JSON, resubscribe: bool) -> bool:
        """Apply one subscriber row; True when it created a subscriber. Raises :class:`_RowError`.

        See docs/providers/campaignmonitor.md#row-failure-codes.
        """
        email = self._row_email(row)
        if not valid_email(email):
            raise _RowError(1, "Invalid Email Address")  # (docs/providers/campaignmonitor.md#row-failure-codes)
        consent = _consent(row.get("ConsentToTrack"))
        key = email.lower()
        sub = self.subscribers.get(key)
        if not resubscribe:  # inactive states refused (docs/providers/campaignmonitor.md#row-failure-codes)
            if key in self.suppressed:
                raise _RowError(204, "In Suppression List")
            if sub is not None and sub.state in INACTIVE_CODES:
                raise _RowError(*INACTIVE_CODES[sub.state])
        else:  # re-activates unsubscribed, deleted, bounced, suppressed (docs/providers/campaignmonitor.md#resubscribe)
            self.suppressed.discard(key)
        is_new = sub is None
        if sub is None:
            now = now_cm()
            # "Unchanged" on a new subscriber is stored as "No": UNCONFIRMED
            # (docs/providers/campaignmonitor.md#consent-to-track).
            sub = self.subscribers[key] = Subscriber(email, "", "Active", "No", now, now)
        else:
            self._set_state(sub, "Active")
        self._apply(sub, row, consent)
        return is_new

    def _apply(self, sub: Subscriber, row: JSON, consent: str) -> None:
        """Name, consent and custom field items, in order (docs/providers/campaignmonitor.md#custom-field-values)."""
        if consent != "Unchanged":
            sub.consent = consent
        name = row.get("Name")
        if isinstance(name, str):  # given -> updated (an empty string clears it)
            sub.name = name
        for item in row.get("CustomFields") or []:
            self._apply_item(sub, item)

    def _apply_item(self, sub: Subscriber, item: JSON) -> None:
        """One ``{"Key", "Value", "Clear"?}`` item (docs/providers/campaignmonitor.md#custom-field-values).

        Unknown keys are ignored (UNCONFIRMED). Values over 250 characters: the item is
        ignored. An empty Value without ``Clear`` changes nothing (omitted fields keep old values).
        """
        fld = self._field_for(item.get("Key"))
        if fld is None:
            return
        raw = item.get("Value")
        if raw is None:
            value = ""
        elif isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
            return
        else:
            value = str(raw)
        if len(value) > MAX_VALUE_LENGTH:
            return
        clear = _is_true(item.get("Clear"))
        if fld.data_type == "MultiSelectMany":
            current: list[str] = sub.fields.get(fld.key) or []
            # Clear with a Value removes that option; with an empty Value, every option
            # (docs/providers/campaignmonitor.md#custom-field-values).
            if clear:
                current = [v for v in current if v != value] if value else []
            elif value in fld.options and value not in current:
                # Items add options: merge, not replace (replace-vs-merge UNCONFIRMED; the sandbox merges).
                # A value that is not an option is ignored (UNCONFIRMED,
                # docs/providers/campaignmonitor.md#custom-field-values).
                current = [*current, value]
            if current:
                sub.fields[fld.key] = current
            else:
                sub.fields.pop(fld.key, None)
            return
        if clear or (fld.data_type == "Date" and value == "0000-00-00"):  # Date cleared by 0000-00-00
            sub.fields.pop(fld.key, None)
            return
        if value == "":
            return
        if fld.data_type == "MultiSelectOne":
            if value in fld.options:  # not an option: ignored (UNCONFIRMED)
                sub.fields[fld.key] = value
        elif fld.data_type == "Number":
            if _number(value) is not None:  # not a number: ignored (UNCONFIRMED)
                sub.fields[fld.key] = value
        elif fld.data_type == "Date":
            day = _parse_date(value)  # unparseable or out of range: ignored
            if day is not None:
                sub.fields[fld.key] = day
        else:  # Text, Country, USState (country/state names are not validated by the sandbox)
            sub.fields[fld.key] = value

    @staticmethod
    def _set_state(sub: Subscriber, state: str) -> None:
        if sub.state != state:
            sub.state = state
            sub.date = now_cm()

    def _check_title(self, title: Any, current: Segment | None) -> str:
        if not isinstance(title, str) or not title.strip():
            raise ApiError(400, 273, "Segment Title Empty")  # (docs/providers/campaignmonitor.md#rule-segments)
        clean: str = title.strip()
        if any(s.title.lower() == clean.lower() and s is not current for s in self.segments.values()):
            raise ApiError(400, 275, "Duplicate Segment Title")  # (docs/providers/campaignmonitor.md#rule-segments)
        return clean

    def _compile(self, groups: Any) -> tuple[list[JSON], list[list[Rule]]]:
        """Check rule groups; any bad rule answers 277 with per-rule results in ResultData.

        See docs/providers/campaignmonitor.md#rule-segments.

        Supported on custom fields (by bracketed key, any case): ``EQUALS <v>``, ``NOT_EQUALS <v>``,
        ``PROVIDED``, ``NOT_PROVIDED`` (the full grammar is UNCONFIRMED). Built-in rule types (Name,
        EmailAddress, DateSubscribed, campaign activity) are not modelled and answer 277 too. The
        ResultData shape is the sandbox's (UNCONFIRMED).
        """
        if not isinstance(groups, list):
            raise ApiError(400, 277, "Invalid Segment Rules", {"RuleResults": []})
        shown: list[JSON] = []
        compiled: list[list[Rule]] = []
        problems: list[JSON] = []
        for group in groups:
            rules = group.get("Rules") if isinstance(group, dict) else None
            if not isinstance(rules, list) or not rules:
                problems.append({"RuleType": "", "Clause": "", "Code": 2706, "Message": "Empty Segment Clauses"})
                continue
            out: list[Rule] = []
            for rule in rules:
                rule_type = rule.get("RuleType") if isinstance(rule, dict) else None
                clause = rule.get("Clause") if isinstance(rule, dict) else None
                try:
                    out.append(self._compile_rule(rule_type, clause))
                except _RowError as err:
                    problems.append({"RuleType": rule_type, "Clause": clause, "Code": err.code, "Message": err.message})
            compiled.append(out)
            shown.append({"Rules": [{"RuleType": r.get("RuleType"), "Clause": r.get("Clause")} for r in rules]})
        if problems:
            raise ApiError(400, 277, "Invalid Segment Rules", {"RuleResults": problems})
        for group_rules, group_shown in zip(compiled, shown, strict=True):
            for rule_obj, rule_json in zip(group_rules, group_shown["Rules"], strict=True):
                rule_json["RuleType"] = rule_obj.key  # canonical key casing
        return shown, compiled

    def _compile_rule(self, rule_type: Any, clause: Any) -> Rule:
        # Sub-codes 2703-2722 (docs/providers/campaignmonitor.md#rule-segments).
        if not isinstance(rule_type, str) or not rule_type.strip():
            raise _RowError(2704, "Empty Segment RuleType")
        key = rule_type.strip().lower()
        fld = self.fields.get(key) if key.startswith("[") else None
        if fld is None:
            raise _RowError(2705, "Invalid Segment RuleType")
        if not isinstance(clause, str) or not clause.strip():
            raise _RowError(2710, "Empty Clause")
        verb, _, operand = clause.strip().partition(" ")
        verb, operand = verb.upper(), operand.strip()
        if verb in ("PROVIDED", "NOT_PROVIDED") and not operand:
            return Rule(fld.key, verb, "")
        if verb not in CLAUSE_VERBS:
            raise _RowError(2703, "Invalid Segment Clauses")
        if not operand:
            raise _RowError(2719, "Required Clause Object Missing")
        if fld.data_type in OPTION_TYPES and operand not in fld.options:
            raise _RowError(2722, "Option Doesnt Exist For Field")
        if fld.data_type == "Number" and _number(operand) is None:
            raise _RowError(2721, "Invalid Number Format")
        if fld.data_type == "Date":
            day = _parse_date(operand)
            if day is None or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", operand):
                raise _RowError(2720, "Invalid Date Format")
        return Rule(fld.key, verb, operand)

    def _matches(self, sub: Subscriber, seg: Segment) -> bool:
        """Rules in a group are OR-ed, groups AND-ed (inferred, docs/providers/campaignmonitor.md#rule-segments)."""
        return all(any(self._rule_matches(sub, rule) for rule in group) for group in seg.compiled)

    def _rule_matches(self, sub: Subscriber, rule: Rule) -> bool:
        value = sub.fields.get(rule.key)
        fld = self.fields.get(rule.key)
        provided = fld is not None and value not in (None, "", [])
        if rule.verb == "PROVIDED":
            return provided
        if rule.verb == "NOT_PROVIDED":
            return not provided
        equals = provided and fld is not None and _equals(fld.data_type, value, rule.operand)
        return equals if rule.verb == "EQUALS" else not equals

    def _page(self, chosen: list[Subscriber], paging: Paging) -> JSON:
        """Return ``chosen`` in the paged result shape (docs/providers/campaignmonitor.md#paged-results)."""
        if paging.since:
            chosen = [s for s in chosen if s.date >= paging.since]
        sort_key: Callable[[Subscriber], Any] = {
            "email": lambda s: s.email.lower(),
            "name": lambda s: (s.name.lower(), s.email.lower()),
            "date": lambda s: (s.date, s.email.lower()),
        }[paging.order]
        chosen.sort(key=sort_key, reverse=paging.direction == "desc")
        start = (paging.page - 1) * paging.size
        results = [self._subscriber_json(s) for s in chosen[start : start + paging.size]]
        return {
            "Results": results,
            "ResultsOrderedBy": paging.order,
            "OrderDirection": paging.direction,
            "PageNumber": paging.page,
            "PageSize": paging.size,
            "RecordsOnThisPage": len(results),
            "TotalNumberOfRecords": len(chosen),
            "NumberOfPages": math.ceil(len(chosen) / paging.size),
        }

    # -- JSON shapes -------------------------------------------------------------------------------

    def _list_json(self) -> JSON:
        """List details (docs/providers/campaignmonitor.md#list-details)."""
        return {
            "ListID": self.list_id,
            "Title": "Sandbox list",
            "UnsubscribePage": "",
            "UnsubscribeSetting": "AllClientLists",
            "ConfirmedOptIn": False,
            "ConfirmationSuccessPage": "",
        }

    def _subscriber_json(self, sub: Subscriber) -> JSON:
        """Return subscriber details; custom fields as ``{"Key": <field name>, "Value"}``, one item per option.

        Key is the field name, as in the official fixture's ``website``; whether Campaign Monitor shows the
        name or the bare key is UNCONFIRMED. See docs/providers/campaignmonitor.md#subscriber-states.
        """
        fields: list[JSON] = []
        for key, value in sub.fields.items():
            fld = self.fields.get(key)
            if fld is None:
                continue
            for one in value if isinstance(value, list) else [value]:
                fields.append({"Key": fld.name, "Value": one})
        return {
            "EmailAddress": sub.email,
            "Name": sub.name,
            "Date": sub.date,
            "ListJoinedDate": sub.joined,
            "State": sub.state,
            "CustomFields": fields,
            "ReadsEmailWith": "",
            "ConsentToTrack": sub.consent,
        }


def _equals(data_type: str, value: Any, operand: str) -> bool:
    """Return whether ``value`` EQUALS ``operand`` for one rule.

    MultiSelectMany matches when the option is among the values (UNCONFIRMED,
    docs/providers/campaignmonitor.md#rule-segments); numbers compare numerically, dates as dates,
    text case-insensitively (UNCONFIRMED).
    """
    if isinstance(value, list):
        return operand in value
    if data_type == "Number":
        return _number(str(value)) == _number(operand)
    if data_type == "Date":
        return str(value) == _parse_date(operand)
    return str(value).casefold() == operand.casefold()
