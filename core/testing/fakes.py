"""An in-memory destination for tests and demos: records what it is sent, misbehaves on request.

    platform = MemoryPlatform(audiences={"aud1"})
    registry = Registry.from_plugins([memory_destination(platform)])

``platform.members`` holds what landed (email -> fields and markers); ``platform.calls`` every
write; ``reject_emails``, ``bad_batch_emails``, ``fail_next`` and ``valid_keys`` make it refuse.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import requests

from ..contract import (
    AuthHandler,
    BatchResult,
    BatchWriter,
    Destination,
    DestinationSpec,
    FieldSpec,
    Limits,
    Outcome,
    OutcomeStatus,
    Record,
    RunContext,
)
from ..errors import AuthError, BadBatchError, RetryableDestinationError, UnknownAudienceError

CONNECTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["api_key"],
    "additionalProperties": False,
    "properties": {
        "api_key": {"type": "string", "minLength": 8, "writeOnly": True, "description": "API key"},
        "account": {"type": "string", "default": "demo", "description": "Account label"},
    },
}
EXPORT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["audience_id"],
    "additionalProperties": False,
    "properties": {
        "audience_id": {"type": "string", "minLength": 1, "description": "Audience to fill"},
        "tag_prefix": {"type": "string", "default": "", "description": "Prefix of segment markers"},
    },
}


@dataclass
class Member:
    """One person at the fake platform: fields, markers and status."""

    fields: dict[str, Any]
    markers: set[str]
    status: str = "subscribed"


@dataclass
class MemoryPlatform:
    """The fake platform's state and its knobs. Thread-safe."""

    audiences: set[str] = field(default_factory=lambda: {"aud1"})
    valid_keys: set[str] | None = None  # None: any key is valid
    members: dict[str, Member] = field(default_factory=dict)
    calls: list[list[Record]] = field(default_factory=list)
    reject_emails: dict[str, str] = field(default_factory=dict)  # email -> reason
    bad_batch_emails: set[str] = field(default_factory=set)
    retryable_emails: dict[str, int] = field(default_factory=dict)  # email -> times to answer retryable
    fail_next: int = 0  # whole calls to fail with a retryable error
    retry_after: float | None = None
    latency: float = 0.0
    max_in_flight: int = 0
    _in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def sent_emails(self) -> list[str]:
        """Return the email of every record sent, in the order of the calls."""
        return [r.email for call in self.calls for r in call]


class MemoryAuth(AuthHandler):
    """Authenticate to the fake platform with a bearer API key."""

    def __init__(self, config: Mapping[str, Any], platform: MemoryPlatform) -> None:
        super().__init__(config)
        self.platform = platform

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        """Add the API key to ``request`` as a bearer token."""
        request.headers["Authorization"] = f"Bearer {self.config['api_key']}"
        return request

    def check(self, session: requests.Session) -> str:
        """Raise :class:`AuthError` unless the platform accepts the API key; return the account label."""
        keys = self.platform.valid_keys
        if keys is not None and self.config["api_key"] not in keys:
            raise AuthError("the memory platform refused the API key: check it and update the connection")
        return str(self.config.get("account", "demo"))


class MemoryWriter(BatchWriter):
    """Write batches to the fake platform, honouring its knobs."""

    def __init__(
        self, session: requests.Session, config: Mapping[str, Any], context: RunContext, platform: MemoryPlatform
    ) -> None:
        super().__init__(session, config, context)
        self.platform = platform
        self.prefix = str(context.options.get("tag_prefix", ""))

    def prepare(self) -> None:
        """Check the API key and that the export's audience exists."""
        MemoryAuth(self.config, self.platform).check(self.session)
        audience = self.context.options["audience_id"]
        if audience not in self.platform.audiences:
            known = ", ".join(sorted(self.platform.audiences))
            raise UnknownAudienceError(
                f"audience {audience!r} does not exist (audiences: {known}); fix --option audience_id"
            )

    def write_batch(self, records: Sequence[Record]) -> BatchResult:
        """Apply ``records`` to the platform, or fail the whole call as the knobs say."""
        platform = self.platform
        with platform.lock:
            platform._in_flight += 1
            platform.max_in_flight = max(platform.max_in_flight, platform._in_flight)
        try:
            if platform.latency:
                time.sleep(platform.latency)
            with platform.lock:
                platform.calls.append(list(records))
                if platform.fail_next > 0:
                    platform.fail_next -= 1
                    raise RetryableDestinationError(
                        "memory platform: 503 Service Unavailable", retry_after=platform.retry_after
                    )
                if any(r.email in platform.bad_batch_emails for r in records):
                    raise BadBatchError("memory platform: 400 the batch holds a malformed member")
                return BatchResult([self._write(r) for r in records], requests=1)
        finally:
            with platform.lock:
                platform._in_flight -= 1

    def _write(self, record: Record) -> Outcome:
        platform = self.platform
        if record.email in platform.reject_emails:
            return Outcome.rejected(record.key, platform.reject_emails[record.email])
        left = platform.retryable_emails.get(record.email, 0)
        if left:
            platform.retryable_emails[record.email] = left - 1
            return Outcome.retryable(record.key, "memory platform: try again later")
        member = platform.members.get(record.email)
        created = member is None
        if member is None:
            member = platform.members[record.email] = Member({}, set())
        before = (dict(member.fields), set(member.markers))
        if record.upsert:
            member.fields.update(record.fields)
        member.markers |= {self.prefix + m for m in record.add}
        member.markers -= {self.prefix + m for m in record.remove}
        if created:
            return Outcome(record.key, OutcomeStatus.CREATED)
        changed = before != (member.fields, member.markers)
        return Outcome(record.key, OutcomeStatus.UPDATED if changed else OutcomeStatus.UNCHANGED)


def memory_destination(
    platform: MemoryPlatform | None = None,
    *,
    batch_size: int = 100,
    max_concurrency: int = 4,
    profile_cap: int = 1_000_000,
) -> type[Destination]:
    """Return a :class:`Destination` class bound to ``platform`` (a new one when omitted)."""
    bound = platform or MemoryPlatform()

    class MemoryDestination(Destination):
        name = "memory"
        title = "In-memory test destination"
        platform = bound

        def spec(self) -> DestinationSpec:
            return DestinationSpec(
                CONNECTION_SCHEMA,
                EXPORT_SCHEMA,
                FieldSpec({"FNAME": "First name", "LNAME": "Last name"}),
                Limits(batch_size, max_concurrency, profile_cap),
            )

        def auth(self, config: Mapping[str, Any]) -> AuthHandler:
            return MemoryAuth(config, bound)

        def writer(self, session: requests.Session, config: Mapping[str, Any], context: RunContext) -> BatchWriter:
            return MemoryWriter(session, config, context, bound)

    return MemoryDestination
