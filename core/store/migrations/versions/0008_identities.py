"""Real identities for ``segport serve``: passwords, API tokens, web sessions, invites, login throttling.

- ``users.password_hash``: the argon2id hash of the user's password (NULL: no password, no sign-in);
- ``api_tokens``: each user's named API tokens, by the SHA-256 of the token (a token is 32 random
  bytes, so a fast hash suffices: there is nothing to guess, unlike a password);
- ``web_sessions`` and ``invites``: signed-in browser sessions and one-time invite links, both by the
  SHA-256 of their random id;
- ``login_failures``: failed sign-ins by subject (``user:NAME``, ``client:ADDRESS``), so throttling
  holds across restarts and server processes;
- ``audit.client``: the client address of the request behind an audit entry (NULL: the local CLI).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TEXT: sa.types.TypeEngine[str] = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")
INTEGER: sa.types.TypeEngine[int] = sa.BigInteger().with_variant(sa.INTEGER(), "sqlite")


def _user() -> sa.Column[str]:
    return sa.Column("user", TEXT, sa.ForeignKey("users.name", ondelete="CASCADE"), nullable=False)


def upgrade() -> None:
    """Add passwords, API tokens, web sessions, invites, login failures and the audit's client address."""
    op.add_column("users", sa.Column("password_hash", TEXT))
    op.add_column("users", sa.Column("password_changed_at", TEXT))
    op.add_column("audit", sa.Column("client", TEXT))
    op.create_table(
        "api_tokens",
        sa.Column("id", INTEGER, sa.Identity(), primary_key=True),
        _user(),
        sa.Column("name", TEXT, nullable=False),
        sa.Column("digest", TEXT, nullable=False, unique=True),
        sa.Column("created_at", TEXT, nullable=False),
        sa.Column("expires_at", TEXT),
        sa.Column("last_used_at", TEXT),
        sa.UniqueConstraint("user", "name"),
    )
    op.create_table(
        "web_sessions",
        sa.Column("digest", TEXT, primary_key=True),
        _user(),
        sa.Column("created_at", TEXT, nullable=False),
        sa.Column("expires_at", TEXT, nullable=False),
        sa.Column("last_seen_at", TEXT, nullable=False),
        sa.Column("client", TEXT),
    )
    op.create_table(
        "invites",
        sa.Column("digest", TEXT, primary_key=True),
        _user(),
        sa.Column("created_by", TEXT, nullable=False),
        sa.Column("created_at", TEXT, nullable=False),
        sa.Column("expires_at", TEXT, nullable=False),
        sa.Column("used_at", TEXT),
    )
    op.create_table("login_failures", sa.Column("subject", TEXT, nullable=False), sa.Column("at", TEXT, nullable=False))
    op.create_index("login_failures_by_subject", "login_failures", ["subject", "at"])
    op.create_index("web_sessions_by_user", "web_sessions", ["user"])
    op.create_index("invites_by_user", "invites", ["user"])


def downgrade() -> None:
    """Drop identities (the workspace then knows names and roles only)."""
    for table in ("login_failures", "invites", "web_sessions", "api_tokens"):
        op.drop_table(table)
    with op.batch_alter_table("audit") as batch:
        batch.drop_column("client")
    with op.batch_alter_table("users", recreate="never") as batch:  # a copy would lose the CHECK on role
        batch.drop_column("password_changed_at")
        batch.drop_column("password_hash")
