"""Tell releases before Alembic that this workspace is newer than they are.

Those releases read their schema version from ``PRAGMA user_version`` (SQLite) or the table
``segport_schema`` (PostgreSQL), found 2, and would run on a schema they do not know. Set to 3,
they refuse the workspace with their own message ("newer than this segport: upgrade segport").
Downgraded to 0002, the markers say 2 again; below that they are not kept (going that far down is
for development only).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

marker = sa.table("segport_schema", sa.column("version", sa.Integer))


def _mark(version: int) -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"PRAGMA user_version = {version}")
        return
    if not sa.inspect(op.get_bind()).has_table("segport_schema"):
        op.create_table("segport_schema", sa.Column("version", sa.BigInteger(), nullable=False))
    op.execute(marker.delete())
    op.execute(marker.insert().values(version=version))


def upgrade() -> None:
    """Set the schema version of releases before Alembic to 3."""
    _mark(3)


def downgrade() -> None:
    """Set the schema version of releases before Alembic back to 2."""
    _mark(2)
