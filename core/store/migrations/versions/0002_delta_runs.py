"""What makes delta runs cheap (segport 0.1.0's second migration, ``PRAGMA user_version`` 2).

``profiles.seq`` is the load that last changed a profile; ``filter_members`` caches filter-segment
membership up to ``segments.cached_seq``; ``sync_state.seq``/``mapping`` say which profile version
and data matching were delivered, so the planner finds what changed in SQL; the email index
serves its duplicate-address checks.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TEXT: sa.types.TypeEngine[str] = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")
INTEGER: sa.types.TypeEngine[int] = sa.BigInteger().with_variant(sa.INTEGER(), "sqlite")


def upgrade() -> None:
    """Add profile versions, the filter-segment membership cache, delivered versions and the email index."""
    op.add_column("profiles", sa.Column("seq", INTEGER, nullable=False, server_default=sa.text("0")))
    op.create_index("profiles_by_seq", "profiles", ["seq"])
    op.add_column("segments", sa.Column("cached_seq", INTEGER))
    op.create_table(
        "filter_members",
        sa.Column("segment_id", INTEGER, sa.ForeignKey("segments.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("profile_key", TEXT, primary_key=True),
        sqlite_with_rowid=False,
    )
    op.add_column("sync_state", sa.Column("seq", INTEGER))
    op.add_column("sync_state", sa.Column("mapping", INTEGER))
    op.create_index("sync_state_by_email", "sync_state", ["export_id", "email"])


def downgrade() -> None:
    """Remove the columns, table and indexes :func:`upgrade` adds."""
    op.drop_index("sync_state_by_email", "sync_state")
    op.drop_column("sync_state", "mapping")
    op.drop_column("sync_state", "seq")
    op.drop_table("filter_members")
    op.drop_column("segments", "cached_seq")
    op.drop_index("profiles_by_seq", "profiles")
    op.drop_column("profiles", "seq")
