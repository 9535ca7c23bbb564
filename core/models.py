"""The workspace's objects as plain dataclasses (what the store returns and the API hands out)."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any, Generic, Protocol, TypeVar


class Role(str, enum.Enum):
    """What a user may do: admins everything, contributors exports, viewers read."""

    ADMIN = "admin"
    CONTRIBUTOR = "contributor"
    VIEWER = "viewer"


class Share(str, enum.Enum):
    """Who may use a connection."""

    ADMINS = "admins"
    CONTRIBUTORS = "contributors"


class RunStatus(str, enum.Enum):
    """Where a run stands: running, or how it ended."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PARTIAL = "partial"  # finished, but some records still failed after every retry
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # the process died or was stopped mid-run
    PLANNED = "planned"  # a dry run


@dataclass(frozen=True)
class User:
    """A workspace user and their role."""

    name: str
    role: Role
    created_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Return the user as JSON-ready data."""
        return {"name": self.name, "role": self.role.value, "created_at": self.created_at}


@dataclass(frozen=True)
class Connection:
    """A configured destination account. ``config`` holds no secret; they live in the vault."""

    id: int
    name: str
    type: str
    share: Share
    config: dict[str, Any]
    has_secrets: bool
    profile_cap: int | None
    privacy_agreed_by: str
    privacy_agreed_at: str
    export_user: str
    created_at: str

    def to_dict(self, *, full: bool = True) -> dict[str, Any]:
        """Full view for admins; name and type only otherwise."""
        if not full:
            return {"name": self.name, "type": self.type}
        data = asdict(self)
        data["share"] = self.share.value
        del data["id"]
        return data


@dataclass(frozen=True)
class Segment:
    """A named set of profiles: static (loaded keys) or defined by a filter ``expression``."""

    id: int
    name: str
    kind: str  # "static" or "filter"
    expression: str | None
    created_by: str
    updated_at: str

    def to_dict(self) -> dict[str, Any]:
        """Return the segment as JSON-ready data (without its internal id)."""
        data = asdict(self)
        del data["id"]
        return data


@dataclass(frozen=True)
class Export:
    """What to send where: a connection, an audience, the data matching and the segments."""

    id: int
    name: str
    connection: str  # the connection's name (kept when the connection is removed)
    connection_id: int | None  # None once the connection was removed: the export is detached
    segments: list[str]
    email_field: str
    mapping: dict[str, str]  # destination field -> profile attribute
    options: dict[str, Any]
    schedule: str | None
    enabled: bool
    owner: str
    created_at: str
    updated_at: str
    verify_every: int | None = None  # every Nth scheduled run verifies and repairs first (None: never)

    @property
    def detached(self) -> bool:
        """Whether the export's connection was removed."""
        return self.connection_id is None

    def to_dict(self) -> dict[str, Any]:
        """Return the export as JSON-ready data (without internal ids, with ``detached``)."""
        data = asdict(self)
        del data["id"], data["connection_id"]
        data["detached"] = self.detached
        return data


@dataclass
class Run:
    """One run of one export and what it did."""

    id: int
    export: str
    status: RunStatus
    trigger: str  # "manual", "schedule", "refresh", "api"
    user: str
    started_at: str
    finished_at: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    retries: int = 0
    reject_file: str | None = None
    error: str | None = None
    plan: dict[str, int] | None = None
    duration_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the run record as JSON-ready data."""
        data = asdict(self)
        data["status"] = self.status.value
        return data


@dataclass(frozen=True)
class AuditEntry:
    """One line of the audit log: who did what to which target, and when."""

    id: int
    at: str
    user: str
    action: str
    target: str
    detail: dict[str, Any]
    client: str | None = None  # the client address of the request (None: the local CLI)

    def to_dict(self) -> dict[str, Any]:
        """Return the entry as JSON-ready data."""
        return asdict(self)


@dataclass(frozen=True)
class ApiToken:
    """A user's API token as shown: its name and dates, never the secret (nor its digest)."""

    name: str
    user: str
    created_at: str
    expires_at: str | None  # None: never expires
    last_used_at: str | None  # None: never used

    def to_dict(self) -> dict[str, Any]:
        """Return the token's name and dates as JSON-ready data."""
        return asdict(self)


@dataclass(frozen=True)
class SharedConnection:
    """A shared connection as non-admins see it: its name and type, nothing of its config."""

    name: str
    type: str

    def to_dict(self) -> dict[str, Any]:
        """Return the connection's name and type as JSON-ready data."""
        return {"name": self.name, "type": self.type}


@dataclass(frozen=True)
class ConnectionCheck:
    """The answer of a credential check: the platform's short description of the account."""

    connection: str
    account: str
    status: str = "ok"

    def to_dict(self) -> dict[str, Any]:
        """Return the check's answer as JSON-ready data."""
        return {"connection": self.connection, "status": self.status, "account": self.account}


@dataclass(frozen=True)
class ProfileLoad:
    """What a profile load did: rows read, profiles in the workspace after it, and what changed.

    ``added + updated + unchanged == loaded``; ``removed`` counts the profiles a replacing load
    deleted; ``rekeyed_from`` names the previous key of a replacing load that changed it.
    """

    loaded: int
    profiles: int
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    key: str = "id"
    rekeyed_from: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the load's counts as JSON-ready data."""
        return asdict(self)


@dataclass(frozen=True)
class ProfileRemoval:
    """What a profile removal did: profiles removed, and given keys that named no profile."""

    removed: int
    not_found: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Return the removal's counts as JSON-ready data."""
        return asdict(self)


@dataclass(frozen=True)
class ProfilePage:
    """One page of profiles in key order: ``total`` profiles match, ``profiles`` holds those from ``offset``."""

    profiles: list[tuple[str, dict[str, Any]]]
    total: int
    offset: int
    limit: int

    def to_dict(self) -> dict[str, Any]:
        """Return the page as JSON-ready data (each profile as ``{"key", "attributes"}``)."""
        rows = [{"key": key, "attributes": attrs} for key, attrs in self.profiles]
        return {"profiles": rows, "total": self.total, "offset": self.offset, "limit": self.limit}


@dataclass(frozen=True)
class SegmentLoad:
    """What loading a static segment did: members kept, and keys that name no profile."""

    segment: str
    members: int
    unknown_keys: int

    def to_dict(self) -> dict[str, Any]:
        """Return the load's counts as JSON-ready data."""
        return asdict(self)


@dataclass(frozen=True)
class SegmentCount:
    """A segment with its current number of members."""

    segment: Segment
    members: int

    @property
    def name(self) -> str:
        """The segment's name."""
        return self.segment.name

    def to_dict(self) -> dict[str, Any]:
        """Return the segment as JSON-ready data, with its ``members`` count."""
        return {**self.segment.to_dict(), "members": self.members}


@dataclass(frozen=True)
class ScheduledRun:
    """One export's part in a refresh or a scheduled job: its run, its queued task, or why it failed."""

    export: str
    run: Run | None = None
    task: str | None = None
    error: str | None = None

    @property
    def status(self) -> str:
        """The run's status, ``queued`` for a queued task, ``failed`` when the run could not happen."""
        if self.run is not None:
            return self.run.status.value
        return "queued" if self.task is not None else "failed"

    def to_dict(self) -> dict[str, Any]:
        """Return the run record, or the queued task or error of the export, as JSON-ready data."""
        if self.run is not None:
            return self.run.to_dict()
        if self.task is not None:
            return {"export": self.export, "status": "queued", "task": self.task}
        return {"export": self.export, "status": "failed", "error": self.error}


@dataclass(frozen=True)
class ConnectionEdit:
    """What ``connections edit`` did: the connection now, each change (secrets masked), the check's answer."""

    connection: Connection
    changes: dict[str, dict[str, Any]]  # field -> {"old": ..., "new": ...}
    account: str | None = None  # the platform's description of the account, when checked
    notes: tuple[str, ...] = ()  # what the operator should know (e.g. the account could not be compared)

    def to_dict(self) -> dict[str, Any]:
        """Return the connection with ``changes``, ``account`` and ``notes``, as JSON-ready data."""
        return {
            **self.connection.to_dict(),
            "changes": self.changes,
            "account": self.account,
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class ExportEdit:
    """What ``exports edit`` did: the export now, each change, and whether its sync state was kept."""

    export: Export
    changes: dict[str, dict[str, Any]]  # field -> {"old": ..., "new": ...}
    sync_state: str  # "kept" or "reset" (the next run sends everything)
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return the export with ``changes``, ``sync_state`` and ``notes``, as JSON-ready data."""
        return {
            **self.export.to_dict(),
            "changes": self.changes,
            "sync_state": self.sync_state,
            "notes": list(self.notes),
        }


class _Listed(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


Item = TypeVar("Item", bound=_Listed)


@dataclass(frozen=True)
class Page(Generic[Item]):
    """One page of a list: ``items`` from ``offset`` (at most ``limit``) of the ``total`` that match."""

    items: list[Item]
    total: int
    limit: int
    offset: int

    def to_dict(self) -> dict[str, Any]:
        """Return the page as JSON-ready data: ``items``, ``total``, ``limit`` and ``offset``."""
        items = [item.to_dict() for item in self.items]
        return {"items": items, "total": self.total, "limit": self.limit, "offset": self.offset}


@dataclass(frozen=True)
class ExportSummary:
    """An export with its last run (dry runs aside; None: it never ran), as an export list shows it."""

    export: Export
    last_run: Run | None

    @property
    def name(self) -> str:
        """The export's name."""
        return self.export.name

    def to_dict(self) -> dict[str, Any]:
        """Return the export as JSON-ready data, with ``last_run`` (the run record, or None)."""
        return {**self.export.to_dict(), "last_run": self.last_run.to_dict() if self.last_run else None}
