"""The workspace schema, one SQLAlchemy :class:`~sqlalchemy.MetaData` for SQLite and PostgreSQL.

This is the schema at the newest migration (``migrations/versions``); the migrations create and
change it, this module is what statements are written against. Three column types carry the
dialect differences:

- :data:`TEXT`: PostgreSQL compares and sorts it byte by byte (``COLLATE "C"``), as SQLite and
  Python do, so key order is the same in SQL and in the planner;
- :data:`INTEGER`: SQLite's ``INTEGER`` (an ``id INTEGER`` primary key is the rowid), 64-bit
  ``BIGINT`` on PostgreSQL;
- :data:`REAL`: SQLite's ``REAL``, ``DOUBLE PRECISION`` on PostgreSQL.

Booleans are integers and JSON documents are text (written compact by the store), as they
always were. The scratch tables of a run (:data:`SCRATCH`) are temporary tables of the run's
own connection.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Double,
    ForeignKey,
    Identity,
    Index,
    LargeBinary,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    text,
    types,
)
from sqlalchemy.types import TypeEngine

TEXT: TypeEngine[str] = Text().with_variant(Text(collation="C"), "postgresql")
INTEGER: TypeEngine[int] = BigInteger().with_variant(types.INTEGER(), "sqlite")
REAL: TypeEngine[float] = Double().with_variant(types.REAL(), "sqlite")
BLOB: TypeEngine[bytes] = LargeBinary()

metadata = MetaData()


def _id() -> Column[int]:
    return Column("id", INTEGER, Identity(), primary_key=True)


settings = Table(
    "settings",
    metadata,
    Column("key", TEXT, primary_key=True),
    Column("value", TEXT, nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("name", TEXT, primary_key=True),
    Column("role", TEXT, CheckConstraint("role IN ('admin', 'contributor', 'viewer')"), nullable=False),
    Column("created_at", TEXT, nullable=False),
    Column("password_hash", TEXT),  # argon2id (NULL: no password, the user cannot sign in)
    Column("password_changed_at", TEXT),
)

connections = Table(
    "connections",
    metadata,
    _id(),
    Column("name", TEXT, nullable=False, unique=True),
    Column("type", TEXT, nullable=False),
    Column("share", TEXT, CheckConstraint("share IN ('admins', 'contributors')"), nullable=False),
    Column("config", TEXT, nullable=False),
    Column("secrets", BLOB),
    Column("profile_cap", INTEGER),
    Column("privacy_agreed_by", TEXT, nullable=False),
    Column("privacy_agreed_at", TEXT, nullable=False),
    Column("export_user", TEXT, nullable=False),
    Column("created_at", TEXT, nullable=False),
    Column("checked_account", TEXT),  # the account the credentials reached at their last successful check
)

# ``seq``: the load that last changed the profile (the planner skips older ones it delivered)
profiles = Table(
    "profiles",
    metadata,
    Column("key", TEXT, primary_key=True),
    Column("attrs", TEXT, nullable=False),
    Column("seq", INTEGER, nullable=False, server_default=text("0")),
    Index("profiles_by_seq", "seq"),
    sqlite_with_rowid=False,
)

# ``cached_seq``: the load up to which ``filter_members`` holds a filter segment's members;
# ``member_count``: its members when the catalog was at version ``counted_version`` (see store.catalog)
segments = Table(
    "segments",
    metadata,
    _id(),
    Column("name", TEXT, nullable=False, unique=True),
    Column("kind", TEXT, CheckConstraint("kind IN ('static', 'filter')"), nullable=False),
    Column("expression", TEXT),
    Column("created_by", TEXT, nullable=False),
    Column("updated_at", TEXT, nullable=False),
    Column("cached_seq", INTEGER),
    Column("member_count", INTEGER),
    Column("counted_version", INTEGER),
)

segment_members = Table(
    "segment_members",
    metadata,
    Column("segment_id", INTEGER, ForeignKey("segments.id", ondelete="CASCADE"), primary_key=True),
    Column("profile_key", TEXT, primary_key=True),
    sqlite_with_rowid=False,
)

exports = Table(
    "exports",
    metadata,
    _id(),
    Column("name", TEXT, nullable=False, unique=True),
    Column("connection", TEXT, nullable=False),
    Column("connection_id", INTEGER, ForeignKey("connections.id", ondelete="SET NULL")),
    Column("segments", TEXT, nullable=False),
    Column("email_field", TEXT, nullable=False),
    Column("mapping", TEXT, nullable=False),
    Column("options", TEXT, nullable=False),
    Column("schedule", TEXT),
    Column("enabled", INTEGER, nullable=False, server_default=text("1")),
    Column("owner", TEXT, nullable=False),
    Column("created_at", TEXT, nullable=False),
    Column("updated_at", TEXT, nullable=False),
    Column("verify_every", INTEGER),  # every Nth scheduled run verifies and repairs first (NULL: never)
    Index("exports_by_connection_id", "connection_id"),  # a connection's exports (migration 0009)
)

# What the destination acknowledged per profile; ``seq`` and ``mapping`` say which profile version
# and which data matching were delivered, so the planner finds what changed in SQL.
sync_state = Table(
    "sync_state",
    metadata,
    Column("export_id", INTEGER, ForeignKey("exports.id", ondelete="CASCADE"), primary_key=True),
    Column("profile_key", TEXT, primary_key=True),
    Column("email", TEXT, nullable=False),
    Column("record_hash", BLOB, nullable=False),
    Column("markers", TEXT, nullable=False),
    Column("seq", INTEGER),
    Column("mapping", INTEGER),
    Index("sync_state_by_email", "export_id", "email"),
    sqlite_with_rowid=False,
)

# The sync ledger: per connection, audience and address, the last status the platform reported and,
# when segport archived the person itself, their status just before (``archived_from``).
platform_ledger = Table(
    "platform_ledger",
    metadata,
    Column("connection_id", INTEGER, ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True),
    Column("audience", TEXT, primary_key=True),
    Column("email", TEXT, primary_key=True),
    Column("status", TEXT, nullable=False),
    Column("archived_from", TEXT),
    Column("updated_at", TEXT, nullable=False),
    sqlite_with_rowid=False,
)

runs = Table(
    "runs",
    metadata,
    _id(),
    Column("export_id", INTEGER, ForeignKey("exports.id", ondelete="SET NULL")),
    Column("export", TEXT, nullable=False),
    Column("status", TEXT, nullable=False),
    Column("trigger", TEXT, nullable=False),
    Column("user", TEXT, nullable=False),
    Column("pid", INTEGER),
    Column("host", TEXT),
    Column("started_at", TEXT, nullable=False),
    Column("heartbeat_at", TEXT),
    Column("finished_at", TEXT),
    Column("counts", TEXT, nullable=False, server_default=text("'{}'")),
    Column("requests", INTEGER, nullable=False, server_default=text("0")),
    Column("retries", INTEGER, nullable=False, server_default=text("0")),
    Column("reject_file", TEXT),
    Column("error", TEXT),
    Column("plan", TEXT),
    Column("duration_s", REAL),
)
# The run lock of the SQLite store: at most one 'running' run per export. segport.store.postgres
# gives PostgreSQL the same WHERE: declared here, it would load PostgreSQL's dialect (70 ms) in every
# SQLite command.
RUNNING = runs.c.status == "running"
runs_one_running = Index("runs_one_running", runs.c.export_id, unique=True, sqlite_where=RUNNING)
Index("runs_by_export", runs.c.export, runs.c.id)
# The run history's pages, newest first, by export (id), status, trigger and user (migration 0009); the
# export id last, so a non-admin's visibility (the export's connection is shared) is checked in the index
Index("runs_by_export_id", runs.c.export_id, runs.c.id)
Index("runs_by_status", runs.c.status, runs.c.id, runs.c.export_id)
Index("runs_by_trigger", runs.c.trigger, runs.c.id, runs.c.export_id)
Index("runs_by_user", runs.c.user, runs.c.id, runs.c.export_id)

outcomes = Table(
    "outcomes",
    metadata,
    Column("run_id", INTEGER, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("profile_key", TEXT, nullable=False),
    Column("email", TEXT, nullable=False),
    Column("status", TEXT, nullable=False),
    Column("reason", TEXT),
    Column("reported_in", INTEGER),  # an earlier run whose reject file holds this outcome's line (NULL: this run's)
    Index("outcomes_by_run", "run_id", "status"),
)

# One line per person per reason: each (address, status, reason) an export's runs wrote to a reject
# file, and the run that wrote it. A run that refuses the person again for the same reason counts
# them but writes no new line (its outcome names the run in ``reported_in``).
reject_lines = Table(
    "reject_lines",
    metadata,
    Column("export_id", INTEGER, ForeignKey("exports.id", ondelete="CASCADE"), nullable=False),
    Column("profile_key", TEXT, nullable=False),
    Column("email", TEXT, nullable=False),
    Column("status", TEXT, nullable=False),
    Column("reason", TEXT),
    Column("run_id", INTEGER, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Index("reject_lines_by_profile", "export_id", "profile_key"),
    Index("reject_lines_by_run", "run_id"),
)

audit = Table(
    "audit",
    metadata,
    _id(),
    Column("at", TEXT, nullable=False),
    Column("user", TEXT, nullable=False),
    Column("action", TEXT, nullable=False),
    Column("target", TEXT, nullable=False),
    Column("detail", TEXT, nullable=False),
    Column("client", TEXT),  # the client address of the request behind the entry (NULL: the local CLI)
    # the audit's pages, newest first, by user, action, target and time (migration 0009)
    Index("audit_by_user", "user", "id"),
    Index("audit_by_action", "action", "id"),
    Index("audit_by_target", "target", "id"),
    Index("audit_by_at", "at"),
)


def _owner() -> Column[str]:
    return Column("user", TEXT, ForeignKey("users.name", ondelete="CASCADE"), nullable=False)


# Secrets handed out (API tokens, session ids, invite tokens) are stored as the SHA-256 (hex) of
# the secret: each is 32 random bytes, so a fast hash is right (there is nothing to guess, unlike a
# password), and a lookup by digest is one index probe.
api_tokens = Table(
    "api_tokens",
    metadata,
    _id(),
    _owner(),
    Column("name", TEXT, nullable=False),
    Column("digest", TEXT, nullable=False, unique=True),
    Column("created_at", TEXT, nullable=False),
    Column("expires_at", TEXT),
    Column("last_used_at", TEXT),
    UniqueConstraint("user", "name"),
)

web_sessions = Table(
    "web_sessions",
    metadata,
    Column("digest", TEXT, primary_key=True),
    _owner(),
    Column("created_at", TEXT, nullable=False),
    Column("expires_at", TEXT, nullable=False),
    Column("last_seen_at", TEXT, nullable=False),
    Column("client", TEXT),
    Index("web_sessions_by_user", "user"),
)

invites = Table(
    "invites",
    metadata,
    Column("digest", TEXT, primary_key=True),
    _owner(),
    Column("created_by", TEXT, nullable=False),
    Column("created_at", TEXT, nullable=False),
    Column("expires_at", TEXT, nullable=False),
    Column("used_at", TEXT),
    Index("invites_by_user", "user"),
)

# Failed sign-ins by subject (``user:NAME``, ``client:ADDRESS``): throttling survives restarts.
login_failures = Table(
    "login_failures",
    metadata,
    Column("subject", TEXT, nullable=False),
    Column("at", TEXT, nullable=False),
    Index("login_failures_by_subject", "subject", "at"),
)

filter_members = Table(
    "filter_members",
    metadata,
    Column("segment_id", INTEGER, ForeignKey("segments.id", ondelete="CASCADE"), primary_key=True),
    Column("profile_key", TEXT, primary_key=True),
    sqlite_with_rowid=False,
)

# -- a run's scratch space: temporary tables of the connection holding the run's snapshot ----------
scratch = MetaData()


def _temporary(name: str, *columns: Column[object], rowid: bool = True) -> Table:
    return Table(name, scratch, *columns, prefixes=["TEMPORARY"], sqlite_with_rowid=rowid)


# The profiles an export selects, with a bitmask of the segments each one is in (bit = position).
selection = _temporary(
    "sel",
    Column("key", TEXT, primary_key=True),
    Column("segs", INTEGER, nullable=False),
    rowid=False,
)
# The markers (segment names, JSON as sync_state stores them) of each bitmask in the selection.
selection_markers = _temporary(
    "sel_markers",
    Column("segs", INTEGER, primary_key=True, autoincrement=False),
    Column("markers", TEXT, nullable=False),
)
# The addresses taken so far in a run, with the segments of the profile holding each.
held = _temporary(
    "held",
    Column("email", TEXT, primary_key=True),
    Column("segs", INTEGER, nullable=False),
    rowid=False,
)
# What was delivered to profiles that left the selection (or lost their address), in planning order.
exits = _temporary(
    "exits",
    Column("n", INTEGER, Identity(), primary_key=True),
    Column("key", TEXT, nullable=False),
    Column("email", TEXT, nullable=False),
    Column("digest", BLOB, nullable=False),
    Column("markers", TEXT, nullable=False),
)
