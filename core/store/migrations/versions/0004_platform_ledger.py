"""The sync ledger: what the platform last reported per connection, audience and address.

``status`` is the last status the platform reported for the address; ``archived_from`` is the
status the person had when segport archived them itself (NULL when it did not), which is what lets
a later run re-add them without re-subscribing someone who had unsubscribed.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TEXT: sa.types.TypeEngine[str] = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")
INTEGER: sa.types.TypeEngine[int] = sa.BigInteger().with_variant(sa.INTEGER(), "sqlite")


def upgrade() -> None:
    """Create the sync ledger."""
    op.create_table(
        "platform_ledger",
        sa.Column("connection_id", INTEGER, sa.ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("audience", TEXT, primary_key=True),
        sa.Column("email", TEXT, primary_key=True),
        sa.Column("status", TEXT, nullable=False),
        sa.Column("archived_from", TEXT),
        sa.Column("updated_at", TEXT, nullable=False),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    """Drop the sync ledger (what it remembered is lost)."""
    op.drop_table("platform_ledger")
