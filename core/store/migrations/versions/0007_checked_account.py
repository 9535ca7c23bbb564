"""Connections remember the account their credentials reached at the last successful check.

``connections edit`` compares new credentials with it when the old ones can no longer be checked
(the platform rotated the key, or the old endpoint no longer answers).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TEXT: sa.types.TypeEngine[str] = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")


def upgrade() -> None:
    """Add the account of the last successful credential check."""
    op.add_column("connections", sa.Column("checked_account", TEXT))


def downgrade() -> None:
    """Drop the remembered account (edits then compare with the old credentials only)."""
    with op.batch_alter_table("connections", recreate="never") as batch:  # a copy would lose the CHECK on share
        batch.drop_column("checked_account")
