"""One reject line per person per reason: what each export's reject files already hold.

``reject_lines`` holds, per export and profile, each (address, status, reason) a run wrote to its
reject file and which run did; a later run that refuses the person again for the same reason counts
them but does not write the line again. ``outcomes.reported_in`` says, for such an outcome, which
earlier run's reject file holds its line (NULL: the run's own file, as every outcome before this
revision). Existing outcomes are taken over: the first run of each export that reported a line is
its reporter.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TEXT: sa.types.TypeEngine[str] = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")
INTEGER: sa.types.TypeEngine[int] = sa.BigInteger().with_variant(sa.INTEGER(), "sqlite")

_LOST = ("rejected", "failed", "skipped")  # the outcomes a reject file holds


def upgrade() -> None:
    """Create the reject lines, add ``outcomes.reported_in``, take over the lines reported so far."""
    op.create_table(
        "reject_lines",
        sa.Column("export_id", INTEGER, sa.ForeignKey("exports.id", ondelete="CASCADE"), nullable=False),
        sa.Column("profile_key", TEXT, nullable=False),
        sa.Column("email", TEXT, nullable=False),
        sa.Column("status", TEXT, nullable=False),
        sa.Column("reason", TEXT),
        sa.Column("run_id", INTEGER, sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    )
    op.create_index("reject_lines_by_profile", "reject_lines", ["export_id", "profile_key"])
    op.create_index("reject_lines_by_run", "reject_lines", ["run_id"])
    op.add_column("outcomes", sa.Column("reported_in", INTEGER))
    lost = ", ".join(f"'{status}'" for status in _LOST)
    op.execute(
        "INSERT INTO reject_lines (export_id, profile_key, email, status, reason, run_id) "
        "SELECT r.export_id, o.profile_key, o.email, o.status, o.reason, MIN(o.run_id) "
        "FROM outcomes o JOIN runs r ON r.id = o.run_id "
        f"WHERE r.export_id IS NOT NULL AND o.status IN ({lost}) "
        "GROUP BY r.export_id, o.profile_key, o.email, o.status, o.reason"
    )


def downgrade() -> None:
    """Drop the reject lines and ``outcomes.reported_in`` (later runs write every line again)."""
    with op.batch_alter_table("outcomes") as batch:
        batch.drop_column("reported_in")
    op.drop_index("reject_lines_by_run", "reject_lines")
    op.drop_index("reject_lines_by_profile", "reject_lines")
    op.drop_table("reject_lines")
