"""Alembic's entry point for the workspace schema: runs on the connection the store hands over.

:mod:`segport.store.upgrade` calls Alembic with ``config.attributes["connection"]``, already
inside the store's write transaction (the migrations and the version stamp commit together).
A new revision is a hand-written file in ``versions/`` whose ``down_revision`` is the newest one;
add its id to :data:`segport.store.upgrade.REVISIONS`, and change :mod:`segport.store.schema` to
match (tests/core/test_stores.py compares a migrated database with it).
"""

from __future__ import annotations

from alembic import context

from segport.store.schema import metadata

context.configure(connection=context.config.attributes["connection"], target_metadata=metadata)
with context.begin_transaction():
    context.run_migrations()
