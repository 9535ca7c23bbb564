"""The destination contract: what a plugin declares and implements.

A destination plugin is a :class:`Destination` subclass registered under the entry-point group
``segport.destinations``. The engine owns *when* (batching, concurrency, retries, sync state);
the plugin owns *how* (the HTTP calls of one batch):

- :meth:`Destination.spec` — JSON Schemas for the connection config and the export options, the
  destination fields it accepts and its limits;
- :meth:`Destination.auth` — an :class:`AuthHandler` (a ``requests.auth.AuthBase``) that attaches the
  credentials to a session and checks them with a cheap call;
- :meth:`Destination.writer` — a :class:`BatchWriter` that prepares the destination once per run and
  writes batches of :class:`Record`, returning one :class:`Outcome` per record.
"""

from __future__ import annotations

import enum
import functools
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, ClassVar, Mapping, Sequence

import requests

from .pending import PendingJob

DEFAULT_PROFILE_CAP = 1_000_000
# The most audiences :meth:`Destination.list_audiences` returns: the first ones the platform lists
# (an account with more names the others by id).
MAX_AUDIENCES = 1_000


@dataclass(frozen=True)
class Limits:
    """How the engine must drive a destination.

    :param batch_size: most records per :meth:`BatchWriter.write_batch` call.
    :param max_concurrency: most batches in flight at once per credential.
    :param profile_cap: most profiles one export may select (a connection may override it).
    """

    batch_size: int
    max_concurrency: int
    profile_cap: int = DEFAULT_PROFILE_CAP


@dataclass(frozen=True)
class FieldSpec:
    """The destination fields an export may map profile attributes to.

    ``email`` is always required and always mapped. ``known`` lists well-known fields (e.g. FNAME)
    with a short description; when ``allow_other`` is true, any other field name is accepted and
    checked against the platform at run time (e.g. a Mailchimp merge field).
    """

    known: Mapping[str, str] = field(default_factory=dict)
    allow_other: bool = True
    pattern: str = r"^[A-Za-z0-9_\[\] -]{1,100}$"


@dataclass(frozen=True)
class DestinationSpec:
    """Everything a destination declares about itself."""

    connection_schema: Mapping[str, Any]
    export_schema: Mapping[str, Any]
    fields: FieldSpec
    limits: Limits
    auth_methods: tuple[str, ...] = ("api_key",)
    documentation_url: str | None = None


def spec_from_package(
    package: str,
    *,
    fields: FieldSpec,
    limits: Limits,
    auth_methods: tuple[str, ...] = ("api_key",),
    documentation_url: str | None = None,
    filename: str = "spec.json",
) -> DestinationSpec:
    """Build a spec whose schemas come from ``spec.json`` beside the plugin: ``{"connection": ..., "export": ...}``."""
    document = _spec_document(package, filename)
    return DestinationSpec(document["connection"], document["export"], fields, limits, auth_methods, documentation_url)


@functools.cache
def _spec_document(package: str, filename: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(resources.files(package).joinpath(filename).read_text(encoding="utf-8"))
    return document


class OutcomeStatus(str, enum.Enum):
    """The final state of one record in one run."""

    CREATED = "created"  # the platform did not know the person and now does
    UPDATED = "updated"  # fields or segment markers changed
    UNCHANGED = "unchanged"  # the platform already held exactly this
    SKIPPED = "skipped"  # deliberately not changed (e.g. compliance state); counts as delivered
    REJECTED = "rejected"  # permanently refused; ``reason`` says why; not retried
    RETRYABLE = "retryable"  # transient failure of this record; the engine retries it
    FAILED = "failed"  # set by the engine: still retryable after every retry was spent

    @property
    def delivered(self) -> bool:
        """Whether the sync state may record the record as delivered."""
        return self in _DELIVERED


_DELIVERED = frozenset({OutcomeStatus.CREATED, OutcomeStatus.UPDATED, OutcomeStatus.UNCHANGED, OutcomeStatus.SKIPPED})


@dataclass(frozen=True, slots=True)
class Record:
    """One profile's work in a batch, as planned by the engine.

    :param key: the profile key (unique in the workspace).
    :param email: normalised email (trimmed, lower-cased): the identity at the destination.
    :param fields: destination field -> value (from the export's data matching), email excluded.
    :param segments: every exported segment the profile is in now (its full marker set).
    :param add: markers to add (segments the profile entered since the last delivery).
    :param remove: markers to remove (segments the profile left); never a reason to unsubscribe.
    :param upsert: whether the person's fields must be written (new or changed).
    :param new: whether this export never delivered the profile before (a hint; may be stale).
    """

    key: str
    email: str
    fields: Mapping[str, Any]
    segments: frozenset[str] = frozenset()
    add: frozenset[str] = frozenset()
    remove: frozenset[str] = frozenset()
    upsert: bool = True
    new: bool = True


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one record. ``reason`` is required for rejected/retryable/skipped.

    Optional, for the sync ledger (compared by neither ``==`` nor hashing): ``platform_status`` is
    the person's status at the platform as the writer last saw it (``"subscribed"``,
    ``"unsubscribed"``, ``"archived"``...); ``archived`` says the writer archived the person itself,
    and then ``platform_status`` is their status just before (None: unknown).
    """

    key: str
    status: OutcomeStatus
    reason: str | None = None
    platform_status: str | None = field(default=None, compare=False)
    archived: bool = field(default=False, compare=False)

    @classmethod
    def rejected(cls, key: str, reason: str) -> Outcome:
        """Return a rejected outcome: the record was refused for good, for ``reason``."""
        return cls(key, OutcomeStatus.REJECTED, reason)

    @classmethod
    def retryable(cls, key: str, reason: str) -> Outcome:
        """Return a retryable outcome: the record failed for now, for ``reason``, and is sent again."""
        return cls(key, OutcomeStatus.RETRYABLE, reason)


@dataclass
class BatchResult:
    """The outcomes of one :meth:`BatchWriter.write_batch` call and the requests it made.

    With ``pending`` set, the batch became a long platform job (see :class:`segport.PendingJob`):
    ``outcomes`` is then empty, ``requests`` counts the calls made so far, and the job's own result
    brings the outcomes.
    """

    outcomes: list[Outcome]
    requests: int = 1
    pending: PendingJob | None = None


@dataclass(frozen=True)
class RunContext:
    """What a writer knows about the run it serves.

    :param export_name: the export's name (for messages).
    :param options: the export options, validated against the export schema, defaults applied.
    :param segments: the exported segment names, in the export's order.
    :param mapped_fields: destination field names the records carry (email excluded).
    :param dry_run: true when only planning: ``prepare`` then makes every check of a real run but
        changes nothing, and notes in ``BatchWriter.would_create`` what it would have created.
    :param repair: true for a repair run: it sends only what ``exports verify`` found drifted, to people
        who are still subscribed at the platform, and must never change anyone's subscription status.
    :param archived_by_segport: from the sync ledger, the addresses of the export's audience
        (:meth:`Destination.audience`) that segport archived itself and has not seen since, each with
        the status it had just before.
    """

    export_name: str
    options: Mapping[str, Any]
    segments: Sequence[str]
    mapped_fields: Sequence[str]
    dry_run: bool = False
    archived_by_segport: Mapping[str, str] = field(default_factory=dict)
    repair: bool = False  # a repair run (``exports run --repair``): never resubscribe, whatever the options


@dataclass(frozen=True)
class MemberState:
    """A person as the platform holds them now, in the export's terms (for ``exports verify``).

    :param status: the platform's status, in its own words lower-cased (Mailchimp ``subscribed``,
        ``unsubscribed``, ``cleaned``, ``pending``, ``transactional``, ``archived``; Campaign Monitor
        ``active``, ``unconfirmed``, ``unsubscribed``, ``bounced``, ``deleted``).
    :param subscribed: whether the status lets segport write to the person (repair only writes to them).
    :param fields: destination field (as the export maps it) -> value at the platform, for every mapped
        field the plugin can read back (``""`` when empty); a field left out is not compared.
    :param markers: the export's segments whose marker the person carries now.
    """

    status: str
    subscribed: bool
    fields: Mapping[str, Any] = field(default_factory=dict)
    markers: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Audience:
    """An audience or list of the platform an export can write to (for choosing one by name).

    :param id: what the export's options take (Mailchimp's list id, Campaign Monitor's ListID).
    :param name: its name at the platform, as people know it.
    :param member_count: how many people it holds, as the platform counts them, when it says so
        cheaply (None: not known).
    """

    id: str
    name: str
    member_count: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the audience as JSON-ready data."""
        return {"id": self.id, "name": self.name, "member_count": self.member_count}


class AuthHandler(requests.auth.AuthBase, ABC):
    """Attaches a connection's credentials to requests and checks them.

    Subclasses implement ``__call__`` (as any ``requests`` auth does) and :meth:`check`.
    """

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = config

    @abstractmethod
    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        """Add the credentials to an outgoing request."""

    @abstractmethod
    def check(self, session: requests.Session) -> str:
        """Make one cheap authenticated call; return a short description of the account.

        Raise :class:`segport.AuthError` when the platform refuses the credentials.
        """

    def updated_secrets(self) -> Mapping[str, Any] | None:
        """Secrets changed during use (e.g. a refreshed OAuth token) for the engine to store."""
        return None


class BatchWriter(ABC):
    """Writes batches to one destination for one run. The engine calls it from worker threads.

    :meth:`prepare` runs once, before any batch; :meth:`write_batch` may run concurrently (up to
    the destination's ``max_concurrency``): keep per-batch state local, treat what :meth:`prepare`
    set as read-only, and share a fact learned mid-run only through a :class:`segport.Learned`.
    """

    def __init__(self, session: requests.Session, config: Mapping[str, Any], context: RunContext) -> None:
        self.session = session
        self.config = config
        self.context = context
        # In a dry run, what prepare() found missing and would have created, one phrase each
        # ("tag 'VIP'"): the dry run prints them instead of failing or creating.
        self.would_create: list[str] = []

    def prepare(self) -> None:  # noqa: B027 - optional hook
        """Check the audience/list exists and the segment markers exist (create them unless dry run).

        A dry run runs it too, with ``context.dry_run`` true: make every check the real run makes
        (and raise the same errors), create nothing, and append what would be created to
        :attr:`would_create`. Raise :class:`segport.UnknownAudienceError`, :class:`segport.AuthError`
        or :class:`segport.ConfigError` for problems the operator must fix before anything is sent.
        """

    @abstractmethod
    def write_batch(self, records: Sequence[Record]) -> BatchResult:
        """Write upserts and marker changes of ``records``; return one outcome per record.

        Raise :class:`segport.RetryableDestinationError` when the whole call failed transiently (a
        transport error of ``requests``, see ``segport.http.TRANSPORT_ERRORS``, may also propagate: the
        engine retries both), :class:`segport.BadBatchError` when the platform refused the batch for
        its content, :class:`segport.AuthError` when it refused the credentials. When the platform
        answers later (a job to poll), return ``BatchResult([], requests, pending=job)``.
        """

    def requests_for(self, records: Sequence[Record]) -> int:
        """How many HTTP requests :meth:`write_batch` would make for ``records`` (for plans)."""
        return 1 if records else 0

    def finish(self) -> None:  # noqa: B027 - optional hook
        """End the run's work on the platform; called once after the last batch of a run that did not fail."""

    def read_members(self, emails: Sequence[str]) -> Mapping[str, MemberState]:
        """Read the people ``emails`` (normalised, at most ``Limits.batch_size``) at the platform (optional).

        Return address -> :class:`MemberState` for each person the platform knows (in any status);
        leave out those it does not know at all. Read only: no call may change anything, so the engine
        calls it without :meth:`prepare`; raise :class:`segport.UnknownAudienceError` when the audience
        or list itself is missing (never report its people as missing). It is called from worker
        threads, at most ``max_concurrency`` calls at once, each holding a slot of the credential's
        governor, and transient errors are retried as for batches. A destination that does not
        override it cannot be verified (``exports verify`` says so).
        """
        raise NotImplementedError


def reads_members(writer: BatchWriter) -> bool:
    """Return whether ``writer`` implements the optional :meth:`BatchWriter.read_members`."""
    return type(writer).read_members is not BatchWriter.read_members


class OAuth2Flow(ABC):
    """The authorization-code flow of a platform; the engine runs the loopback redirect around it."""

    @abstractmethod
    def authorize_url(self, config: Mapping[str, Any], redirect_uri: str, state: str) -> str:
        """Return the URL the user opens to grant access."""

    @abstractmethod
    def exchange(
        self, session: requests.Session, config: Mapping[str, Any], code: str, redirect_uri: str
    ) -> dict[str, Any]:
        """Trade the code for tokens; return the config values to store (tokens are ``writeOnly``).

        Raise :class:`segport.AuthError` when the platform refuses the code or the client.
        """


class Destination(ABC):
    """A destination platform. Subclass it and register it under ``segport.destinations``.

    Class attributes ``name`` (the entry-point name) and ``title`` (display name) are required.
    """

    name: ClassVar[str]
    title: ClassVar[str]

    @abstractmethod
    def spec(self) -> DestinationSpec:
        """Return the connection and export schemas, fields and limits."""

    @abstractmethod
    def auth(self, config: Mapping[str, Any]) -> AuthHandler:
        """Return an auth handler for a validated connection config (secrets included)."""

    @abstractmethod
    def writer(self, session: requests.Session, config: Mapping[str, Any], context: RunContext) -> BatchWriter:
        """Return a batch writer for one run; ``session`` already carries the auth handler."""

    def base_url(self, config: Mapping[str, Any]) -> str | None:
        """Return the API base URL this config talks to (shown by ``connections show``)."""
        return None

    def extra_fields(self, options: Mapping[str, Any]) -> Mapping[str, str]:
        """Profile attributes the export options name, beyond the data matching.

        Returns {record field: profile attribute}; the engine maps, hashes and sends them in
        ``Record.fields`` like mapped fields (e.g. a consent flag read from a profile attribute).
        """
        return {}

    def target(self, options: Mapping[str, Any]) -> str:
        """Return what the export's options point at on the platform (an audience, a list, a marker scheme).

        When an edit changes it, what was delivered before says nothing about the new target, so
        the export's sync state is reset and the next run sends everything. The default treats
        every option as part of the target; override it to name the options that really are.
        """
        return json.dumps(dict(options), sort_keys=True, default=str)

    def audience(self, options: Mapping[str, Any]) -> str:
        """Return the audience (list) the export's options write to: the sync ledger's scope.

        The ledger keeps the statuses writers report per connection, audience and address, so exports
        to one audience share it. The default is :meth:`target`.
        """
        return self.target(options)

    def markers(self, options: Mapping[str, Any], segments: Sequence[str]) -> dict[str, str]:
        """Return {segment: the marker naming it on the platform} (a tag, an option of a field).

        Markers live in :meth:`audience`; segport refuses two segments whose markers differ only
        in case there, as platforms compare them so. The default is the segment names.
        """
        return {segment: segment for segment in segments}

    def oauth(self, config: Mapping[str, Any]) -> OAuth2Flow | None:
        """Return the OAuth2 flow for this config, or None when it authenticates otherwise."""
        return None

    def list_audiences(self, session: requests.Session, config: Mapping[str, Any]) -> list[Audience]:
        """List the audiences (lists) these credentials can write to, for choosing one by name (optional).

        ``config`` is the connection's validated config (secrets included) and ``session`` already
        carries :meth:`auth`'s handler and holds a slot of the credential's call governor per call.
        Read only. Follow the platform's pages and stop at :data:`MAX_AUDIENCES`, in the platform's
        order; raise :class:`segport.AuthError` when the platform refuses the credentials. A
        destination that does not override it cannot list audiences: people then type the id.
        """
        raise NotImplementedError


def lists_audiences(destination: Destination) -> bool:
    """Return whether ``destination`` implements the optional :meth:`Destination.list_audiences`."""
    return type(destination).list_audiences is not Destination.list_audiences
