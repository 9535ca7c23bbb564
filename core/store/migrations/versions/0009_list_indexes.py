"""The pages of the console and the API: indexes of the lists, and the segments' recorded member counts.

Run and audit pages are newest first, filtered by export, status, trigger, user (runs) or user,
action, target, time (audit); each filter has an index ordered by id, so a page and its total are
read from the index whatever the history's length. ``segments.member_count`` is the segment's
member count when the catalog was at version ``counted_version`` (the ``catalog_version``
setting, which every write that can change members renews): counting a million members for
every view of the segment list takes seconds.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

INTEGER: sa.types.TypeEngine[int] = sa.BigInteger().with_variant(sa.INTEGER(), "sqlite")
INDEXES = {
    "runs_by_export_id": ("runs", ["export_id", "id"]),
    "runs_by_status": ("runs", ["status", "id", "export_id"]),
    "runs_by_trigger": ("runs", ["trigger", "id", "export_id"]),
    "runs_by_user": ("runs", ["user", "id", "export_id"]),
    "audit_by_user": ("audit", ["user", "id"]),
    "audit_by_action": ("audit", ["action", "id"]),
    "audit_by_target": ("audit", ["target", "id"]),
    "audit_by_at": ("audit", ["at"]),
    "exports_by_connection_id": ("exports", ["connection_id"]),
}


def upgrade() -> None:
    """Create the indexes of the list pages; add the segments' recorded member counts."""
    for name, (table, columns) in INDEXES.items():
        op.create_index(name, table, columns)
    op.add_column("segments", sa.Column("member_count", INTEGER))
    op.add_column("segments", sa.Column("counted_version", INTEGER))


def downgrade() -> None:
    """Drop the indexes of the list pages and the recorded member counts (the pages then scan and count)."""
    with op.batch_alter_table("segments", recreate="never") as batch:  # a copy would lose the CHECK on kind
        batch.drop_column("counted_version")
        batch.drop_column("member_count")
    for name, (table, _) in INDEXES.items():
        op.drop_index(name, table)
