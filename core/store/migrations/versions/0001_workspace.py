"""The workspace schema of segport 0.1.0's first migration (``PRAGMA user_version`` 1).

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels = None
depends_on = None

# byte-order text on PostgreSQL; SQLite's INTEGER (an ``id`` key is the rowid), 64 bits on PostgreSQL
TEXT: sa.types.TypeEngine[str] = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")
INTEGER: sa.types.TypeEngine[int] = sa.BigInteger().with_variant(sa.INTEGER(), "sqlite")
REAL: sa.types.TypeEngine[float] = sa.Double().with_variant(sa.REAL(), "sqlite")


def _id() -> sa.Column[int]:
    return sa.Column("id", INTEGER, sa.Identity(), primary_key=True)


def upgrade() -> None:
    """Create the workspace tables."""
    op.create_table("settings", sa.Column("key", TEXT, primary_key=True), sa.Column("value", TEXT, nullable=False))
    op.create_table(
        "users",
        sa.Column("name", TEXT, primary_key=True),
        sa.Column("role", TEXT, sa.CheckConstraint("role IN ('admin', 'contributor', 'viewer')"), nullable=False),
        sa.Column("created_at", TEXT, nullable=False),
    )
    op.create_table(
        "connections",
        _id(),
        sa.Column("name", TEXT, nullable=False, unique=True),
        sa.Column("type", TEXT, nullable=False),
        sa.Column("share", TEXT, sa.CheckConstraint("share IN ('admins', 'contributors')"), nullable=False),
        sa.Column("config", TEXT, nullable=False),
        sa.Column("secrets", sa.LargeBinary()),
        sa.Column("profile_cap", INTEGER),
        sa.Column("privacy_agreed_by", TEXT, nullable=False),
        sa.Column("privacy_agreed_at", TEXT, nullable=False),
        sa.Column("export_user", TEXT, nullable=False),
        sa.Column("created_at", TEXT, nullable=False),
    )
    op.create_table(
        "profiles",
        sa.Column("key", TEXT, primary_key=True),
        sa.Column("attrs", TEXT, nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "segments",
        _id(),
        sa.Column("name", TEXT, nullable=False, unique=True),
        sa.Column("kind", TEXT, sa.CheckConstraint("kind IN ('static', 'filter')"), nullable=False),
        sa.Column("expression", TEXT),
        sa.Column("created_by", TEXT, nullable=False),
        sa.Column("updated_at", TEXT, nullable=False),
    )
    op.create_table(
        "segment_members",
        sa.Column("segment_id", INTEGER, sa.ForeignKey("segments.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("profile_key", TEXT, primary_key=True),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "exports",
        _id(),
        sa.Column("name", TEXT, nullable=False, unique=True),
        sa.Column("connection", TEXT, nullable=False),
        sa.Column("connection_id", INTEGER, sa.ForeignKey("connections.id", ondelete="SET NULL")),
        sa.Column("segments", TEXT, nullable=False),
        sa.Column("email_field", TEXT, nullable=False),
        sa.Column("mapping", TEXT, nullable=False),
        sa.Column("options", TEXT, nullable=False),
        sa.Column("schedule", TEXT),
        sa.Column("enabled", INTEGER, nullable=False, server_default=sa.text("1")),
        sa.Column("owner", TEXT, nullable=False),
        sa.Column("created_at", TEXT, nullable=False),
        sa.Column("updated_at", TEXT, nullable=False),
    )
    op.create_table(
        "sync_state",
        sa.Column("export_id", INTEGER, sa.ForeignKey("exports.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("profile_key", TEXT, primary_key=True),
        sa.Column("email", TEXT, nullable=False),
        sa.Column("record_hash", sa.LargeBinary(), nullable=False),
        sa.Column("markers", TEXT, nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "runs",
        _id(),
        sa.Column("export_id", INTEGER, sa.ForeignKey("exports.id", ondelete="SET NULL")),
        sa.Column("export", TEXT, nullable=False),
        sa.Column("status", TEXT, nullable=False),
        sa.Column("trigger", TEXT, nullable=False),
        sa.Column("user", TEXT, nullable=False),
        sa.Column("pid", INTEGER),
        sa.Column("host", TEXT),
        sa.Column("started_at", TEXT, nullable=False),
        sa.Column("heartbeat_at", TEXT),
        sa.Column("finished_at", TEXT),
        sa.Column("counts", TEXT, nullable=False, server_default=sa.text("'{}'")),
        sa.Column("requests", INTEGER, nullable=False, server_default=sa.text("0")),
        sa.Column("retries", INTEGER, nullable=False, server_default=sa.text("0")),
        sa.Column("reject_file", TEXT),
        sa.Column("error", TEXT),
        sa.Column("plan", TEXT),
        sa.Column("duration_s", REAL),
    )
    running = sa.column("status") == "running"
    op.create_index(
        "runs_one_running", "runs", ["export_id"], unique=True, sqlite_where=running, postgresql_where=running
    )
    op.create_index("runs_by_export", "runs", ["export", "id"])
    op.create_table(
        "outcomes",
        sa.Column("run_id", INTEGER, sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("profile_key", TEXT, nullable=False),
        sa.Column("email", TEXT, nullable=False),
        sa.Column("status", TEXT, nullable=False),
        sa.Column("reason", TEXT),
    )
    op.create_index("outcomes_by_run", "outcomes", ["run_id", "status"])
    op.create_table(
        "audit",
        _id(),
        sa.Column("at", TEXT, nullable=False),
        sa.Column("user", TEXT, nullable=False),
        sa.Column("action", TEXT, nullable=False),
        sa.Column("target", TEXT, nullable=False),
        sa.Column("detail", TEXT, nullable=False),
    )


def downgrade() -> None:
    """Drop the workspace tables (their data is lost)."""
    for table in ("audit", "outcomes", "runs", "sync_state", "exports", "segment_members", "segments"):
        op.drop_table(table)
    for table in ("profiles", "connections", "users", "settings"):
        op.drop_table(table)
