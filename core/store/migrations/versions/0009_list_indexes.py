"""Indexes for the pages of the console and the API: runs, audit entries and a connection's exports.

Run and audit pages are newest first, filtered by export, status, trigger, user (runs) or user,
action, target, time (audit); each filter has an index ordered by id, so a page and its total are
read from the index whatever the history's length.

Revision ID: 0009
Revises: 0007
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0007"
branch_labels = None
depends_on = None

INDEXES = {
    "runs_by_export_id": ("runs", ["export_id", "id"]),
    "runs_by_status": ("runs", ["status", "id"]),
    "runs_by_trigger": ("runs", ["trigger", "id"]),
    "runs_by_user": ("runs", ["user", "id"]),
    "audit_by_user": ("audit", ["user", "id"]),
    "audit_by_action": ("audit", ["action", "id"]),
    "audit_by_target": ("audit", ["target", "id"]),
    "audit_by_at": ("audit", ["at"]),
    "exports_by_connection_id": ("exports", ["connection_id"]),
}


def upgrade() -> None:
    """Create the indexes of the list pages."""
    for name, (table, columns) in INDEXES.items():
        op.create_index(name, table, columns)


def downgrade() -> None:
    """Drop the indexes of the list pages (the pages then scan their tables)."""
    for name, (table, _) in INDEXES.items():
        op.drop_index(name, table)
