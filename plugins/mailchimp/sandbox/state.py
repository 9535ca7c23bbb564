"""State and rules of the Mailchimp sandbox: one account, one audience, its members and tags.

Everything here is plain Python behind one lock; :mod:`segport_mailchimp.sandbox` puts HTTP in
front of it. Comments point at the platform facts in ``docs/providers/mailchimp.md``.
Methods that answer the API raise :class:`ApiError`, which the server renders as problem+json.
"""

from __future__ import annotations

import hashlib
import random
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Mapping

from .addresses import address_refusal

ERROR_TYPE = "https://mailchimp.com/developer/marketing/docs/errors/"  # (docs/providers/mailchimp.md#problem-documents)
INVALID_DETAIL = "The resource submitted could not be validated. For field-specific details, see the 'errors' array."
NOT_FOUND_DETAIL = "The requested resource could not be found."  # (docs/providers/mailchimp.md#error-texts)
MAX_BATCH = 500  # members per batch call and per tag add/remove array (docs/providers/mailchimp.md#batch-size)
MAX_COUNT = 1000  # pagination `count` (docs/providers/mailchimp.md#pagination)
# The statuses a client may write (docs/providers/mailchimp.md#member-statuses).
WRITABLE_STATUSES = ("subscribed", "unsubscribed", "cleaned", "pending", "transactional")
ALL_STATUSES = (*WRITABLE_STATUSES, "archived")
BAD_STATUS = "Value is not one of the enum values: " + ", ".join(WRITABLE_STATUSES)
MERGE_TYPES = ("text", "number", "address", "phone", "date", "url", "imageurl", "radio", "dropdown", "birthday", "zip")
ADDRESS_PARTS = ("addr1", "city", "state", "zip")  # (docs/providers/mailchimp.md#merge-values)
JSON = dict[str, Any]


_clock: tuple[int, str] = (0, "")  # (epoch second, its ISO form): one format per second, not per member


def now_iso() -> str:
    """Return the current UTC time as Mailchimp prints it (``2024-05-01T12:00:00+00:00``)."""
    global _clock
    second = int(time.time())
    if _clock[0] != second:
        _clock = (second, datetime.fromtimestamp(second, timezone.utc).isoformat())
    return _clock[1]


def subscriber_hash(email: str) -> str:
    """md5 of the trimmed, lower-cased address (docs/providers/mailchimp.md#subscriber-hash)."""
    return hashlib.md5(email.strip().lower().encode("utf-8")).hexdigest()


# Exact texts (docs/providers/mailchimp.md#error-texts); the batch array reuses them, which is UNCONFIRMED
# (docs/providers/mailchimp.md#batch-subscribe-answer).
def compliance_text(email: str) -> str:
    """Return the refusal of an address in compliance state."""
    return (
        f"{email} is in a compliance state due to unsubscribe, bounce, or compliance review and cannot be subscribed."
    )


def forgotten_text(email: str) -> str:
    """Return the refusal of an address that was permanently deleted."""
    return (
        f"{email} was permanently deleted and cannot be re-imported. "
        "The contact must re-subscribe to get back on the list."
    )


def throttled_text(email: str) -> str:
    """Return the refusal of an address that signed up to too many lists recently."""
    # The refusal lifts only after hours or days (docs/providers/mailchimp.md#error-texts).
    return f"{email} has signed up to a lot of lists very recently; we're not allowing more signups for now"


def exists_text(email: str) -> str:
    """Return the refusal to create a member that already exists."""
    return f"{email} is already a list member. Use PUT to insert or update list members."


def batch_exists_text(email: str) -> str:
    """Return the batch refusal to create a member that already exists."""
    # Batch wording of ERROR_CONTACT_EXISTS: UNCONFIRMED (docs/providers/mailchimp.md#batch-subscribe-answer);
    # the text is the sandbox's own.
    return (
        f"{email} is already a list member, do you want to update? "
        "please provide update_existing:true in the request body"
    )


class ApiError(Exception):
    """An API answer in problem-detail form (docs/providers/mailchimp.md#problem-documents)."""

    def __init__(
        self, status: int, title: str, detail: str, errors: list[JSON] | None = None, headers: JSON | None = None
    ) -> None:
        super().__init__(f"{status} {title}: {detail}")
        self.status, self.title, self.detail, self.errors = status, title, detail, errors
        self.headers: dict[str, str] = dict(headers or {})  # extra response headers (e.g. ``Allow`` of a 405)

    def problem(self) -> JSON:
        """Return the problem+json document (``instance`` is a fresh uuid)."""
        doc: JSON = {
            "type": ERROR_TYPE,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "instance": str(uuid.uuid4()),
        }
        if self.errors is not None:
            doc["errors"] = self.errors
        return doc


def not_found() -> ApiError:
    """Return 404 Resource Not Found."""
    return ApiError(404, "Resource Not Found", NOT_FOUND_DETAIL)


def too_many(field_name: str) -> ApiError:
    """Return the 400 answering more than 500 items in one call (docs/providers/mailchimp.md#batch-size)."""
    detail = f"Maximum allowed member items exceeded, please provide at most {MAX_BATCH} items in {field_name} field"
    return ApiError(400, "Invalid Resource", detail)


def not_archivable() -> ApiError:
    """Return the 405 answering DELETE of a member who cannot be archived.

    See docs/providers/mailchimp.md#archive-and-permanent-delete.
    """
    detail = "This list member cannot be removed. Can not archive a contact that is bounced, pending or archived"
    return ApiError(405, "Method Not Allowed", detail, headers={"Allow": "GET, PUT"})


def invalid(problems: Iterable[tuple[str, str]], detail: str = INVALID_DETAIL) -> ApiError:
    """400 Invalid Resource with an ``errors`` array of (field, message)."""
    return ApiError(400, "Invalid Resource", detail, [{"field": f, "message": m} for f, m in problems])


@dataclass(slots=True)
class MergeField:
    """A merge field of the audience: its tag, type and display settings."""

    merge_id: int
    tag: str
    name: str
    type: str
    required: bool = False
    default_value: str = ""
    public: bool = True
    display_order: int = 1
    options: JSON = field(default_factory=dict)
    help_text: str = ""


@dataclass(slots=True)
class Tag:
    """A tag, which the API also shows as a static segment with an int id.

    See docs/providers/mailchimp.md#tags-are-static-segments.
    """

    id: int
    name: str
    created_at: str
    updated_at: str
    members: set[str] = field(default_factory=set)


@dataclass(slots=True)
class Member:
    """A member of the audience: address, status, merge fields and tags."""

    hash: str
    email: str
    status: str
    web_id: int
    created: str
    last_changed: str
    merge: dict[str, Any] = field(default_factory=dict)
    tags: dict[int, str] = field(default_factory=dict)  # tag id -> date added
    email_type: str = "html"
    language: str = ""
    vip: bool = False
    source: str = "API - Generic"
    # Who unsubscribed them: the person themselves (no API may re-subscribe them) or an API call
    # (one may). See docs/providers/mailchimp.md#api-versus-self-unsubscribed.
    self_unsubscribed: bool = False
    unsubscribe_reason: str = ""


class _MemberError(Exception):
    """A per-member failure inside a batch call (becomes one ``errors[]`` row)."""

    def __init__(self, code: str, message: str, field_name: str = "", field_message: str = "") -> None:
        super().__init__(message)
        self.code, self.message, self.field, self.field_message = code, message, field_name, field_message


# The reason an API unsubscribe leaves on the member: text UNCONFIRMED
# (docs/providers/mailchimp.md#api-versus-self-unsubscribed).
API_UNSUBSCRIBE_REASON = "N/A (Unsubscribed by an admin)"
SELF_UNSUBSCRIBE_REASON = "Unspecified"
UNSUBSCRIBERS = ("self", "api")  # who unsubscribed a seeded member


def _subscribe_blocked(member: Member | None, new: str, flagged: bool) -> bool:
    """Whether setting ``new`` on ``member`` (None: not on the audience) is refused as a compliance state.

    Subscribing a ``flagged`` address (callers pass whether the flag blocks ``new``: ``pending`` passes),
    or making a cleaned member ``subscribed``/``pending``, is refused; a member who unsubscribed
    *themselves* may not become ``subscribed`` but may become ``pending`` (a re-confirmation email;
    maintainers call it intended), while one an API call unsubscribed may be set back to
    ``subscribed``. See docs/providers/mailchimp.md#compliance-state and
    docs/providers/mailchimp.md#api-versus-self-unsubscribed.
    """
    current = member.status if member is not None else None
    if new not in ("subscribed", "pending") or new == current:
        return False
    self_unsubscribed = member is not None and current == "unsubscribed" and member.self_unsubscribed
    return flagged or current == "cleaned" or (self_unsubscribed and new == "subscribed")


class SandboxState:
    """One Mailchimp account (dc ``us1``) with one audience. Thread-safe: one lock guards everything."""

    def __init__(self, *, seed: int | None = None, api_key: str | None = None) -> None:
        rng = random.Random(seed) if seed is not None else random.SystemRandom()
        self.dc = "us1"
        # An API key is `<32 hex>-<dc>` (docs/providers/mailchimp.md#base-url-and-data-center).
        self.api_key = api_key or f"{rng.getrandbits(128):032x}-{self.dc}"
        self.list_id = f"{rng.getrandbits(40):010x}"  # a 10-hex list id
        self.account_id = f"{rng.getrandbits(100):025x}"
        self.list_web_id = rng.randrange(100_000, 999_999)
        self.created = now_iso()
        self.lock = threading.Lock()
        self.reset()

    # -- lifecycle and test hooks ---------------------------------------------------------------

    def reset(self) -> None:
        """Forget every member, tag, flag and custom merge field; restore the audience."""
        with self.lock:
            self.deleted = False
            self.members: dict[str, Member] = {}
            self.counts: dict[str, int] = dict.fromkeys(ALL_STATUSES, 0)
            self.tags: dict[str, Tag] = {}  # lower-cased name -> tag
            self.tags_by_id: dict[int, Tag] = {}
            self.next_tag_id = 10_001
            self.next_web_id = 100_000_001
            self.compliance: set[str] = set()
            self.forgotten: set[str] = set()
            # New audiences get FNAME, LNAME, ADDRESS, PHONE (editable) (docs/providers/mailchimp.md#merge-fields).
            self.merge_fields: dict[str, MergeField] = {}
            for tag, name, kind, options in (
                ("FNAME", "First Name", "text", {"size": 25}),
                ("LNAME", "Last Name", "text", {"size": 25}),
                ("ADDRESS", "Address", "address", {"default_country": 164}),
                ("PHONE", "Phone Number", "phone", {"phone_format": "none"}),
            ):
                self._add_merge_field(tag, name, kind, options=options)

    def delete_list(self) -> None:
        """Delete the audience: later calls naming it answer 404."""
        with self.lock:
            self.deleted = True

    def mark_compliance(self, email: str) -> None:
        """Put an address in compliance state: subscribing it fails."""
        with self.lock:
            self.compliance.add(subscriber_hash(email))

    def mark_forgotten(self, email: str) -> None:
        """Permanently delete an address: it stops being a member and can never be re-imported.

        See docs/providers/mailchimp.md#archive-and-permanent-delete.
        """
        with self.lock:
            self._forget(subscriber_hash(email))

    def seed_member(
        self,
        email: str,
        status: str = "subscribed",
        merge_fields: Mapping[str, Any] | None = None,
        tags: Iterable[str] = (),
        unsubscribed_by: str = "self",
    ) -> JSON:
        """Create or overwrite a member bypassing the API's rules (for pre-existing contacts).

        An ``unsubscribed`` (or ``archived``) member unsubscribed themselves unless ``unsubscribed_by``
        is ``"api"``: then an API call may set them back to ``subscribed``.
        """
        if status not in ALL_STATUSES:
            raise ValueError(f"status must be one of {', '.join(ALL_STATUSES)}")
        if unsubscribed_by not in UNSUBSCRIBERS:
            raise ValueError(f"unsubscribed_by must be one of {', '.join(UNSUBSCRIBERS)}")
        with self.lock:
            unknown = [tag for tag in merge_fields or {} if tag not in self.merge_fields]
            if unknown:
                raise ValueError(f"unknown merge fields: {', '.join(unknown)}")
            member = self.members.get(subscriber_hash(email))
            if member is None:
                member = self._create(email, status, source="Sandbox")
            else:
                self._set_status(member, status)
            if status in ("unsubscribed", "archived"):
                member.self_unsubscribed = unsubscribed_by == "self"
                api = not member.self_unsubscribed
                member.unsubscribe_reason = API_UNSUBSCRIBE_REASON if api else SELF_UNSUBSCRIBE_REASON
            member.merge.update({k: v for k, v in (merge_fields or {}).items() if v != ""})
            for name in tags:
                self._tag_member(member, self._tag(name))
            return self._member_json(member)

    # -- dumps ------------------------------------------------------------------------------------

    def summary(self) -> JSON:
        """Return members per status, members per tag and the merge field tags."""
        with self.lock:
            return {
                "audience": self.list_id,
                "members": {status: n for status, n in self.counts.items() if n},
                "tags": {tag.name: len(tag.members) for tag in self.tags_by_id.values()},
                "merge_fields": list(self.merge_fields),
            }

    def dump(self) -> JSON:
        """Return the whole state as JSON, for ``/_sandbox/state``.

        Its shape: ``{"account", "lists": {list_id: {"list", "deleted", "merge_fields", "members": {email: …},
        "segments"}}, "compliance", "forgotten"}``; members are keyed by lower-cased email.
        """
        with self.lock:
            members = {
                m.email.lower(): {
                    "email_address": m.email,
                    "status": m.status,
                    "email_type": m.email_type,
                    "merge_fields": dict(m.merge),
                    "tags": [self.tags_by_id[t].name for t in m.tags],
                }
                for m in self.members.values()
            }
            audience = {
                "list": self._list_json(),
                "deleted": self.deleted,
                "merge_fields": [self._merge_field_json(mf) for mf in self.merge_fields.values()],
                "members": members,
                "segments": [self._segment_json(tag) for tag in self.tags_by_id.values()],
            }
            return {
                "account": {"account_id": self.account_id, "dc": self.dc},
                "lists": {self.list_id: audience},
                "compliance": sorted(self.compliance),
                "forgotten": sorted(self.forgotten),
            }

    # -- audiences and merge fields (docs/providers/mailchimp.md#audience) ------------------------------------

    def lists(self, count: int, offset: int) -> JSON:
        """Answer ``GET /lists``: the one audience, unless it was deleted, paged as Mailchimp pages collections.

        ``constraints`` is the account's audience allowance; the sandbox's plan allows one audience
        (see docs/providers/mailchimp.md#listing-audiences).
        """
        with self.lock:
            lists = [] if self.deleted else [self._list_json()]
            return {
                "lists": lists[offset : offset + count],
                "total_items": len(lists),
                "constraints": {"may_create": not lists, "max_instances": 1, "current_total_instances": len(lists)},
                "_links": [],
            }

    def get_list(self, list_id: str) -> JSON:
        """Answer ``GET /lists/{list_id}``: the audience object."""
        with self.lock:
            self._check_list(list_id)
            return self._list_json()

    def list_merge_fields(self, list_id: str, count: int, offset: int) -> JSON:
        """Answer ``GET /lists/{list_id}/merge-fields``: one page of the merge fields."""
        with self.lock:
            self._check_list(list_id)
            fields = [self._merge_field_json(mf) for mf in self.merge_fields.values()]
            return {
                "merge_fields": fields[offset : offset + count],
                "list_id": self.list_id,
                "total_items": len(fields),
            }

    def create_merge_field(self, list_id: str, body: JSON) -> JSON:
        """POST merge-fields: ``name`` and ``type`` required (docs/providers/mailchimp.md#merge-fields)."""
        with self.lock:
            self._check_list(list_id)
            name, kind, tag = body.get("name"), body.get("type"), body.get("tag")
            problems = []
            if not isinstance(name, str) or not name.strip():
                problems.append(("name", "This value should not be blank."))
            if kind not in MERGE_TYPES:
                problems.append(("type", f"Value is not one of the enum values: {', '.join(MERGE_TYPES)}"))
            if tag is not None and (not isinstance(tag, str) or not re.fullmatch(r"[A-Za-z0-9_]{1,10}", tag)):
                # Tag length limit of 10 is UNCONFIRMED (docs/providers/mailchimp.md#merge-tag-length).
                problems.append(("tag", "Tag must be 1-10 letters, digits or underscores."))
            if problems:
                raise invalid(problems)
            assert isinstance(name, str) and isinstance(kind, str)
            tag = (tag or re.sub(r"[^A-Z0-9_]", "", name.upper())[:10] or f"MMERGE{len(self.merge_fields) + 1}").upper()
            if tag in self.merge_fields:
                # Duplicate-tag text UNCONFIRMED.
                raise invalid([("tag", f'A Merge Field with the tag "{tag}" already exists for this list.')])
            options = body.get("options") if isinstance(body.get("options"), dict) else {}
            mf = self._add_merge_field(
                tag,
                name.strip(),
                kind,
                required=bool(body.get("required", False)),
                default_value=str(body.get("default_value") or ""),
                public=bool(body.get("public", False)),
                options=dict(options or {}),
                help_text=str(body.get("help_text") or ""),
            )
            return self._merge_field_json(mf)

    # -- batch subscribe/update (docs/providers/mailchimp.md#batch-subscribe-request) ------------------------------

    def batch_subscribe(
        self,
        list_id: str,
        body: JSON,
        *,
        skip_merge_validation: bool = False,
        skip_duplicate_check: bool = False,
        refuse: Callable[[str], bool] | None = None,
    ) -> JSON:
        """``POST /lists/{id}``: 200 with per-member results; whole-request schema errors are 400.

        ``refuse`` (fault injection): new signups it names fail with the "signed up to a lot of lists very
        recently" ``ERROR_GENERIC`` row. See docs/providers/mailchimp.md#batch-subscribe-answer.
        """
        members = body.get("members")
        if not isinstance(members, list):
            raise invalid([("members", "This value should not be blank.")])
        if len(members) > MAX_BATCH:  # over 500: UNCONFIRMED (docs/providers/mailchimp.md#batch-size)
            raise too_many("members")
        problems: list[tuple[str, str]] = []
        for i, item in enumerate(members):
            if not isinstance(item, dict):
                problems.append((f"members.item:{i}", "Schema describes object, another type found instead"))
                continue
            if not isinstance(item.get("email_address"), str):
                problems.append((f"members.item:{i}.email_address", "This value should not be blank."))
            if item.get("status") not in WRITABLE_STATUSES:
                # `status` required: UNCONFIRMED (docs/providers/mailchimp.md#batch-subscribe-request).
                problems.append((f"members.item:{i}.status", BAD_STATUS))
            if "merge_fields" in item and not isinstance(item["merge_fields"], dict):
                problems.append(
                    (f"members.item:{i}.merge_fields", "Schema describes object, another type found instead"),
                )
            tags = item.get("tags", [])
            if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                problems.append((f"members.item:{i}.tags", "Schema describes array of strings"))
        if problems:
            raise invalid(problems)
        update_existing = bool(body.get("update_existing", False))
        # sync_tags acts only with update_existing (docs/providers/mailchimp.md#batch-subscribe-request).
        sync_tags = bool(body.get("sync_tags", False)) and update_existing
        created: list[JSON] = []
        updated: list[JSON] = []
        errors: list[JSON] = []
        seen: set[str] = set()
        with self.lock:
            self._check_list(list_id)
            for item in members:
                email = item["email_address"].strip()
                key = subscriber_hash(email)
                if key in seen:
                    # The first occurrence wins (docs/providers/mailchimp.md#batch-subscribe-request).
                    if skip_duplicate_check:
                        continue
                    # Text of the duplicate error UNCONFIRMED.
                    errors.append(
                        self._batch_error(
                            email, _MemberError("ERROR_GENERIC", f"{email} appears more than once in this request.")
                        )
                    )
                    continue
                seen.add(key)
                try:
                    member, is_new = self._batch_one(
                        key, email, item, update_existing, sync_tags, skip_merge_validation, refuse
                    )
                except _MemberError as err:
                    errors.append(self._batch_error(email, err))
                    continue
                (created if is_new else updated).append(self._member_json(member))
        return {
            "new_members": created,
            "updated_members": updated,
            "errors": errors,
            "total_created": len(created),
            "total_updated": len(updated),
            "error_count": len(errors),
            "_links": [],
        }

    def _batch_one(
        self,
        key: str,
        email: str,
        item: JSON,
        update_existing: bool,
        sync_tags: bool,
        skip_mv: bool,
        refuse: Callable[[str], bool] | None = None,
    ) -> tuple[Member, bool]:
        status: str = item["status"]
        refusal = address_refusal(email)
        if refusal is not None:  # (docs/providers/mailchimp.md#address-checks)
            field_message = "looks fake or invalid" if refusal[0] == "fake" else refusal[1]
            raise _MemberError("ERROR_GENERIC", refusal[1], "email_address", field_message)
        if key in self.forgotten:
            raise _MemberError("ERROR_GENERIC", forgotten_text(email))
        member = self._live(key)
        if member is not None and not update_existing:
            raise _MemberError("ERROR_CONTACT_EXISTS", batch_exists_text(email))
        if member is None and refuse is not None and refuse(email):
            raise _MemberError("ERROR_GENERIC", throttled_text(email))
        if _subscribe_blocked(member, status, self._flagged(key, status)):
            raise _MemberError("ERROR_GENERIC", compliance_text(email))
        merge = item.get("merge_fields") or {}
        bad = self._merge_problems(merge, member.merge if member else {}, skip_mv)
        if bad:
            raise _MemberError("ERROR_GENERIC", "Your merge fields were invalid.", bad[0][0], bad[0][1])
        is_new = member is None
        member = self._upsert(key, email, status)
        self._write_fields(member, item)
        names = item.get("tags", [])
        if sync_tags:  # replace all tags (docs/providers/mailchimp.md#batch-subscribe-request)
            wanted = {self._tag(n).id for n in names}
            for tag_id in [t for t in member.tags if t not in wanted]:
                self._untag_member(member, self.tags_by_id[tag_id])
        for name in names:
            self._tag_member(member, self._tag(name))
        return member, is_new

    @staticmethod
    def _batch_error(email: str, err: _MemberError) -> JSON:
        return {
            "email_address": email,
            "error": err.message,
            "error_code": err.code,
            "field": err.field,
            "field_message": err.field_message,
        }

    # -- single members (docs/providers/mailchimp.md#add-or-update-a-member) ----------------------------------

    def get_member(self, list_id: str, ref: str) -> JSON:
        """Answer ``GET /lists/{list_id}/members/{ref}``: the member object, 404 when absent."""
        with self.lock:
            self._check_list(list_id)
            member = self.members.get(self._ref(ref))
            if member is None:
                raise not_found()
            return self._member_json(member)

    def list_members(self, list_id: str, count: int, offset: int, status: str | None) -> JSON:
        """Answer ``GET /lists/{list_id}/members``: one page of the members, of one ``status`` or all."""
        with self.lock:
            self._check_list(list_id)
            chosen = [m for m in self.members.values() if status is None or m.status == status]
            return {
                "members": [self._member_json(m) for m in chosen[offset : offset + count]],
                "list_id": self.list_id,
                "total_items": len(chosen),
            }

    def put_member(self, list_id: str, ref: str, body: JSON, *, skip_merge_validation: bool = False) -> JSON:
        """Upsert: ``status_if_new`` for new members; ``status`` (optional) changes an existing one.

        See docs/providers/mailchimp.md#add-or-update-a-member and docs/providers/mailchimp.md#compliance-state.
        """
        with self.lock:
            self._check_list(list_id)
            email = self._body_email(body)
            key = self._ref(ref)
            if subscriber_hash(email) != key:
                # Another member's address: Member Exists (docs/providers/mailchimp.md#add-or-update-a-member).
                if self._live(subscriber_hash(email)) is not None:
                    raise ApiError(400, "Member Exists", exists_text(email))
                # Email changes through PUT are not modelled; text UNCONFIRMED.
                raise invalid([("email_address", "The email address does not match the subscriber hash.")])
            member = self._live(key)
            status = body.get("status")
            if member is None:
                status = body.get("status_if_new")
                if status not in WRITABLE_STATUSES:  # required when new; message UNCONFIRMED
                    raise invalid([("status_if_new", "This value should not be blank.")])
            elif status is not None and status not in WRITABLE_STATUSES:
                raise invalid([("status", BAD_STATUS)])
            self._check_write(email, key, member, status, body, skip_merge_validation)
            member = self._upsert(key, email, status or (member.status if member else "subscribed"))
            self._write_fields(member, body)  # no `tags` on PUT (docs/providers/mailchimp.md#add-or-update-a-member)
            return self._member_json(member)

    def create_member(self, list_id: str, body: JSON, *, skip_merge_validation: bool = False) -> JSON:
        """POST members: create only; an existing member is 400 Member Exists.

        See docs/providers/mailchimp.md#create-a-member.
        """
        with self.lock:
            self._check_list(list_id)
            email = self._body_email(body)
            status = body.get("status")
            if status not in WRITABLE_STATUSES:
                raise invalid([("status", BAD_STATUS)])
            tags = body.get("tags", [])
            if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                raise invalid([("tags", "Schema describes array of strings")])
            key = subscriber_hash(email)
            if self._live(key) is not None:
                raise ApiError(400, "Member Exists", exists_text(email))
            self._check_write(email, key, None, status, body, skip_merge_validation)
            member = self._upsert(key, email, status)
            self._write_fields(member, body)
            for name in tags:
                self._tag_member(member, self._tag(name))
            return self._member_json(member)

    def patch_member(self, list_id: str, ref: str, body: JSON, *, skip_merge_validation: bool = False) -> JSON:
        """PATCH: update fields/status of an existing member, else 404 (docs/providers/mailchimp.md#member-object)."""
        with self.lock:
            self._check_list(list_id)
            key = self._ref(ref)
            member = self.members.get(key)
            if member is None:
                raise not_found()
            status = body.get("status")
            if status is not None and status not in WRITABLE_STATUSES:
                raise invalid([("status", BAD_STATUS)])
            self._check_write(member.email, key, member, status, body, skip_merge_validation)
            if status is not None:
                self._set_status(member, status)
            self._write_fields(member, body)
            return self._member_json(member)

    def archive_member(self, list_id: str, ref: str) -> None:
        """DELETE: archive (status ``archived``), not permanent.

        See docs/providers/mailchimp.md#archive-and-permanent-delete.
        """
        with self.lock:
            self._check_list(list_id)
            key = self._ref(ref)
            self._check_archivable(key)
            member = self._live(key)
            if member is None:
                raise not_found()
            self._set_status(member, "archived")

    def delete_permanent(self, list_id: str, ref: str) -> None:
        """``actions/delete-permanent``: erase; the address can never be re-imported.

        See docs/providers/mailchimp.md#archive-and-permanent-delete.
        """
        with self.lock:
            self._check_list(list_id)
            key = self._ref(ref)
            if key not in self.members:
                raise not_found()
            self._forget(key)

    # -- tags and static segments (docs/providers/mailchimp.md#tags-are-static-segments) -----------------------

    def member_tags(self, list_id: str, ref: str) -> JSON:
        """Answer ``GET /lists/{list_id}/members/{ref}/tags``: the member's tags with when they were added."""
        with self.lock:
            self._check_list(list_id)
            member = self.members.get(self._ref(ref))
            if member is None:
                raise not_found()
            tags = [{"id": t, "name": self.tags_by_id[t].name, "date_added": added} for t, added in member.tags.items()]
            return {"tags": tags, "total_items": len(tags)}

    def update_member_tags(self, list_id: str, ref: str, body: JSON) -> None:
        """``active`` adds (creating the tag), ``inactive`` removes; unknown member -> 404.

        See docs/providers/mailchimp.md#member-tags.
        """
        tags = body.get("tags")
        if not isinstance(tags, list):
            raise invalid([("tags", "This value should not be blank.")])
        problems = []
        for i, item in enumerate(tags):
            if not isinstance(item, dict) or not _tag_name_ok(item.get("name")):
                problems.append((f"tags.item:{i}.name", "This value should not be blank."))
            elif item.get("status") not in ("active", "inactive"):
                problems.append((f"tags.item:{i}.status", "Value is not one of the enum values: active, inactive"))
        if problems:
            raise invalid(problems)
        with self.lock:
            self._check_list(list_id)
            member = self.members.get(self._ref(ref))
            if member is None:
                raise not_found()
            for item in tags:
                if item["status"] == "active":
                    self._tag_member(member, self._tag(item["name"]))
                else:
                    tag = self.tags.get(item["name"].strip().lower())
                    if tag is not None:
                        self._untag_member(member, tag)

    def segments(self, list_id: str, kind: str | None, count: int, offset: int) -> JSON:
        """Answer ``GET /lists/{list_id}/segments``: static segments are the tags; there are no saved/fuzzy ones.

        See docs/providers/mailchimp.md#tags-are-static-segments.
        """
        with self.lock:
            self._check_list(list_id)
            tags = list(self.tags_by_id.values()) if kind in (None, "", "static") else []
            return {
                "segments": [self._segment_json(t) for t in tags[offset : offset + count]],
                "list_id": self.list_id,
                "total_items": len(tags),
            }

    def get_segment(self, list_id: str, segment_id: int) -> JSON:
        """Answer ``GET /lists/{list_id}/segments/{segment_id}``: the static segment (a tag)."""
        with self.lock:
            return self._segment_json(self._segment(list_id, segment_id))

    def create_segment(self, list_id: str, body: JSON) -> JSON:
        """Create a static segment (a tag); emails not on the list are ignored.

        See docs/providers/mailchimp.md#tags-are-static-segments.
        """
        name, emails = body.get("name"), body.get("static_segment", [])
        if not _tag_name_ok(name):
            raise invalid([("name", "This value should not be blank.")])
        if "options" in body:  # saved (rule) segments are not modelled by the sandbox
            raise invalid([("options", "The sandbox supports static segments (tags) only.")])
        if not isinstance(emails, list) or not all(isinstance(e, str) for e in emails):
            raise invalid([("static_segment", "Schema describes array of strings")])
        assert isinstance(name, str)
        with self.lock:
            self._check_list(list_id)
            if name.strip().lower() in self.tags:
                # Duplicate-name behaviour UNCONFIRMED (docs/providers/mailchimp.md#unconfirmed); the sandbox answers
                # 400 "Tag already exists.".
                raise ApiError(400, "Invalid Resource", "Tag already exists.")
            tag = self._tag(name)
            for email in emails:
                member = self._live(subscriber_hash(email))
                if member is not None:
                    self._tag_member(member, tag)
            return self._segment_json(tag)

    def delete_segment(self, list_id: str, segment_id: int) -> None:
        """Answer ``DELETE /lists/{list_id}/segments/{segment_id}``: the tag goes, from every member too."""
        with self.lock:
            tag = self._segment(list_id, segment_id)
            for key in list(tag.members):
                self._untag_member(self.members[key], tag)
            del self.tags[tag.name.lower()], self.tags_by_id[tag.id]

    def segment_members(self, list_id: str, segment_id: int, body: JSON) -> JSON:
        """Bulk add/remove (each array max 500) (docs/providers/mailchimp.md#tag-membership-in-bulk).

        Not-on-list emails in ``members_to_add`` are reported in ``errors`` (exact behaviour UNCONFIRMED;
        the text is the sandbox's), in ``members_to_remove`` ignored. Members already in the state
        asked for are reported as added/removed too (idempotent).
        """
        problems = []
        for name in ("members_to_add", "members_to_remove"):
            emails = body.get(name, [])
            if not isinstance(emails, list) or not all(isinstance(e, str) for e in emails):
                problems.append((name, "Schema describes array of strings"))
        if problems:
            raise invalid(problems)
        if any(len(body.get(name, [])) > MAX_BATCH for name in ("members_to_add", "members_to_remove")):
            raise too_many("members_to_add field or members_to_remove")
        added: list[JSON] = []
        removed: list[JSON] = []
        missing: list[str] = []
        with self.lock:
            tag = self._segment(list_id, segment_id)
            for email in body.get("members_to_add", []):
                member = self._live(subscriber_hash(email))
                if member is None:
                    missing.append(email)
                    continue
                self._tag_member(member, tag)
                added.append(self._member_json(member))
            for email in body.get("members_to_remove", []):
                member = self._live(subscriber_hash(email))
                if member is not None:
                    self._untag_member(member, tag)
                    removed.append(self._member_json(member))
        errors = [{"email_addresses": missing, "error": "Email addresses are not members of this list."}]
        return {
            "members_added": added,
            "members_removed": removed,
            "errors": errors if missing else [],
            "total_added": len(added),
            "total_removed": len(removed),
            "error_count": len(missing),
            "_links": [],
        }

    def tag_search(self, list_id: str, prefix: str) -> JSON:
        """Answer ``GET /lists/{list_id}/tag-search``: tags whose name starts with ``prefix``, any case.

        The case rule is UNCONFIRMED (docs/providers/mailchimp.md#tag-search).
        """
        with self.lock:
            self._check_list(list_id)
            low = prefix.lower()
            found = [{"id": t.id, "name": t.name} for t in self.tags_by_id.values() if t.name.lower().startswith(low)]
            return {"tags": found, "total_items": len(found)}

    # -- internals (call with the lock held) ----------------------------------------------------------

    def _check_list(self, list_id: str) -> None:
        # A wrong id (e.g. the web_id) answers 404 (docs/providers/mailchimp.md#audience).
        if self.deleted or list_id != self.list_id:
            raise not_found()

    def _segment(self, list_id: str, segment_id: int) -> Tag:
        self._check_list(list_id)
        tag = self.tags_by_id.get(segment_id)
        if tag is None:
            raise not_found()
        return tag

    @staticmethod
    def _ref(ref: str) -> str:
        """Return the member key of a path reference: the subscriber hash or the raw email.

        See docs/providers/mailchimp.md#subscriber-hash.
        """
        return subscriber_hash(ref) if "@" in ref else ref.lower()

    def _flagged(self, key: str, status: str | None) -> bool:
        """Whether a compliance flag on ``key`` blocks writing ``status``: ``pending`` stays allowed.

        See docs/providers/mailchimp.md#compliance-state.
        """
        return key in self.compliance and status != "pending"

    def _check_archivable(self, key: str) -> None:
        """Refuse (405) to archive a member who is pending, cleaned (bounced) or already archived.

        See docs/providers/mailchimp.md#archive-and-permanent-delete.
        """
        member = self.members.get(key)
        if member is not None and member.status in ("pending", "cleaned", "archived"):
            raise not_archivable()

    def _live(self, key: str) -> Member | None:
        """Return the member unless absent or archived (archived contacts are re-added as new)."""
        member = self.members.get(key)
        return None if member is None or member.status == "archived" else member

    @staticmethod
    def _body_email(body: JSON) -> str:
        email = body.get("email_address")
        if not isinstance(email, str) or not email.strip():
            raise invalid([("email_address", "This value should not be blank.")])
        return email.strip()

    def _check_write(
        self, email: str, key: str, member: Member | None, status: str | None, body: JSON, skip_mv: bool
    ) -> None:
        """Single-member rules: fake email, forgotten, compliance, merge fields.

        See docs/providers/mailchimp.md#error-texts and docs/providers/mailchimp.md#compliance-state.
        """
        refusal = address_refusal(email) if member is None else None
        if refusal is not None:  # (docs/providers/mailchimp.md#address-checks)
            raise ApiError(400, "Invalid Resource", refusal[1])
        if member is None and key in self.forgotten:
            raise ApiError(400, "Forgotten Email Not Subscribed", forgotten_text(email))
        if status is not None and _subscribe_blocked(member, status, self._flagged(key, status)):
            raise ApiError(400, "Member In Compliance State", compliance_text(email))
        merge = body.get("merge_fields", {})
        if not isinstance(merge, dict):
            raise invalid([("merge_fields", "Schema describes object, another type found instead")])
        bad = self._merge_problems(merge, member.merge if member else {}, skip_mv)
        if bad:
            raise invalid(bad, "Your merge fields were invalid.")  # (docs/providers/mailchimp.md#merge-fields)

    def _merge_problems(
        self, values: Mapping[str, Any], current: Mapping[str, Any], skip_mv: bool
    ) -> list[tuple[str, str]]:
        """Unknown tags, wrong value types and missing required values (docs/providers/mailchimp.md#merge-fields)."""
        problems = []
        for tag, value in values.items():
            mf = self.merge_fields.get(tag)  # tags are matched exactly (upper case), UNCONFIRMED
            if mf is None:
                problems.append((tag, f"The merge field {tag} does not exist on this audience."))
            elif value == "":
                continue  # "" clears (docs/providers/mailchimp.md#merge-values)
            elif mf.type == "address":
                if not isinstance(value, dict) or not all(
                    value.get(p) and isinstance(value[p], str) for p in ADDRESS_PARTS
                ):
                    # An address needs addr1, city, state and zip (docs/providers/mailchimp.md#merge-values).
                    problems.append((tag, "Please enter a complete address"))
            elif isinstance(value, bool) or not isinstance(value, (str, int, float)):
                problems.append((f"merge_fields.{tag}", "Data did not match any of the schemas described in anyOf."))
            elif mf.type == "number" and not _numeric(value):
                problems.append((tag, "Please enter a number"))  # text UNCONFIRMED
        if not skip_mv:  # skip_merge_validation (docs/providers/mailchimp.md#merge-fields)
            for mf in self.merge_fields.values():
                if mf.required and values.get(mf.tag, current.get(mf.tag, mf.default_value)) in ("", None):
                    problems.append((mf.tag, "Please enter a value"))
        return problems

    def _write_fields(self, member: Member, body: JSON) -> None:
        for tag, value in (body.get("merge_fields") or {}).items():
            if value == "":
                member.merge.pop(tag, None)
            elif self.merge_fields[tag].type == "number":
                member.merge[tag] = _to_number(value)
            else:
                member.merge[tag] = value if isinstance(value, dict) else str(value)
        if body.get("email_type") in ("html", "text"):
            member.email_type = body["email_type"]
        if isinstance(body.get("language"), str):
            member.language = body["language"]
        if isinstance(body.get("vip"), bool):
            member.vip = body["vip"]
        member.last_changed = now_iso()

    def _upsert(self, key: str, email: str, status: str) -> Member:
        member = self.members.get(key)
        if member is None:
            return self._create(email, status)
        self._set_status(member, status)
        return member

    def _create(self, email: str, status: str, source: str = "API - Generic") -> Member:
        now = now_iso()
        member = Member(subscriber_hash(email), email.strip(), status, self.next_web_id, now, now, source=source)
        if status == "unsubscribed":  # created unsubscribed by an API call (a seed may say otherwise)
            member.unsubscribe_reason = API_UNSUBSCRIBE_REASON
        self.next_web_id += 1
        self.members[member.hash] = member
        self.counts[status] += 1
        return member

    def _set_status(self, member: Member, status: str) -> None:
        """Change a member's status through the API: an unsubscribe here is an API unsubscribe."""
        if status != member.status:
            self.counts[member.status] -= 1
            self.counts[status] += 1
            if status == "unsubscribed":
                member.self_unsubscribed, member.unsubscribe_reason = False, API_UNSUBSCRIBE_REASON
            elif status != "archived":  # archived keeps who unsubscribed them; any other status ends it
                member.self_unsubscribed, member.unsubscribe_reason = False, ""
            member.status = status
            member.last_changed = now_iso()

    def _forget(self, key: str) -> None:
        member = self.members.pop(key, None)
        if member is not None:
            self.counts[member.status] -= 1
            for tag_id in member.tags:
                self.tags_by_id[tag_id].members.discard(key)
        self.forgotten.add(key)

    def _tag(self, name: str) -> Tag:
        """Return the tag named ``name``, created if missing.

        Names match case-insensitively, first casing kept (as integrators compare them; Mailchimp's
        exact rule is UNCONFIRMED, docs/providers/mailchimp.md#tag-name-casing).
        """
        name = name.strip()
        tag = self.tags.get(name.lower())
        if tag is None:
            now = now_iso()
            tag = Tag(self.next_tag_id, name, now, now)
            self.next_tag_id += 1
            self.tags[name.lower()] = tag
            self.tags_by_id[tag.id] = tag
        return tag

    def _tag_member(self, member: Member, tag: Tag) -> None:
        if tag.id not in member.tags:
            member.tags[tag.id] = tag.updated_at = now_iso()
            tag.members.add(member.hash)

    def _untag_member(self, member: Member, tag: Tag) -> None:
        if member.tags.pop(tag.id, None) is not None:
            tag.members.discard(member.hash)
            tag.updated_at = now_iso()

    def _add_merge_field(self, tag: str, name: str, kind: str, **extra: Any) -> MergeField:
        mf = MergeField(len(self.merge_fields) + 1, tag, name, kind, display_order=len(self.merge_fields) + 2, **extra)
        self.merge_fields[tag] = mf
        return mf

    # -- JSON shapes -------------------------------------------------------------------------------

    def _list_json(self) -> JSON:
        """Return the audience object; its stats are live here, cached at Mailchimp.

        See docs/providers/mailchimp.md#audience.
        """
        c = self.counts
        return {
            "id": self.list_id,
            "web_id": self.list_web_id,
            "name": "Sandbox audience",
            "contact": {
                "company": "Sandbox",
                "address1": "1 Sandbox Way",
                "city": "Atlanta",
                "state": "GA",
                "zip": "30308",
                "country": "US",
            },
            "permission_reminder": "You signed up on the sandbox.",
            "use_archive_bar": False,
            "campaign_defaults": {
                "from_name": "Sandbox",
                "from_email": "sandbox@example.com",
                "subject": "",
                "language": "en",
            },
            "double_optin": False,
            "marketing_permissions": False,
            "email_type_option": False,
            "date_created": self.created,
            "list_rating": 0,
            "visibility": "pub",
            "stats": {
                "member_count": c["subscribed"],
                "unsubscribe_count": c["unsubscribed"],
                "cleaned_count": c["cleaned"],
                "member_count_since_send": c["subscribed"],
                "unsubscribe_count_since_send": c["unsubscribed"],
                "cleaned_count_since_send": c["cleaned"],
                "merge_field_count": len(self.merge_fields),
                "total_contacts": len(self.members),
            },
            "_links": [],
        }

    def _merge_field_json(self, mf: MergeField) -> JSON:
        return {
            "merge_id": mf.merge_id,
            "tag": mf.tag,
            "name": mf.name,
            "type": mf.type,
            "required": mf.required,
            "default_value": mf.default_value,
            "public": mf.public,
            "display_order": mf.display_order,
            "options": mf.options,
            "help_text": mf.help_text,
            "list_id": self.list_id,
        }

    def _segment_json(self, tag: Tag) -> JSON:
        return {
            "id": tag.id,
            "name": tag.name,
            "member_count": len(tag.members),
            "type": "static",
            "created_at": tag.created_at,
            "updated_at": tag.updated_at,
            "list_id": self.list_id,
        }

    def _member_json(self, m: Member) -> JSON:
        """Return the list-member object: every merge field of the audience, "" when unset.

        See docs/providers/mailchimp.md#member-object.
        """
        merge = {tag: m.merge.get(tag, "") for tag in self.merge_fields}
        digest = hashlib.md5(m.hash.encode()).hexdigest()
        return {
            "id": m.hash,
            "email_address": m.email,
            "unique_email_id": digest[:10],
            "contact_id": digest,
            "full_name": f"{merge.get('FNAME', '')} {merge.get('LNAME', '')}".strip(),
            "web_id": m.web_id,
            "email_type": m.email_type,
            "status": m.status,
            "merge_fields": merge,
            "interests": {},
            "stats": {"avg_open_rate": 0, "avg_click_rate": 0},
            "ip_signup": "",
            "timestamp_signup": "",
            "ip_opt": "",
            "timestamp_opt": m.created,
            "member_rating": 2,
            "last_changed": m.last_changed,
            **({"unsubscribe_reason": m.unsubscribe_reason} if m.status == "unsubscribed" else {}),
            "language": m.language,
            "vip": m.vip,
            "email_client": "",
            "source": m.source,
            "tags_count": len(m.tags),
            "tags": [{"id": t, "name": self.tags_by_id[t].name} for t in m.tags],
            "list_id": self.list_id,
            "_links": [],
        }


def _tag_name_ok(name: Any) -> bool:
    return isinstance(name, str) and 0 < len(name.strip()) <= 100  # 100-char limit UNCONFIRMED


def _to_number(value: Any) -> int | float:
    number = float(value)
    return int(number) if number.is_integer() else number


def _numeric(value: Any) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True
