"""Drift: an export may make every Nth scheduled run verify and repair first.

``exports.verify_every`` is N (NULL: never), set with ``segport exports edit NAME --verify-every N``.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

INTEGER: sa.types.TypeEngine[int] = sa.BigInteger().with_variant(sa.INTEGER(), "sqlite")


def upgrade() -> None:
    """Add the verify-every setting of exports."""
    op.add_column("exports", sa.Column("verify_every", INTEGER))


def downgrade() -> None:
    """Drop the verify-every setting (scheduled runs no longer verify first)."""
    with op.batch_alter_table("exports") as batch:
        batch.drop_column("verify_every")
