"""Bring a workspace database to the newest schema with Alembic (scripts in ``migrations/``).

A database Alembic manages holds its revision in ``alembic_version``. A database of a release
before Alembic holds how many of that release's migrations ran instead (SQLite ``PRAGMA
user_version``, PostgreSQL table ``segport_schema``); those migrations are revisions 0001 and
0002, so such a database is stamped at the matching revision, then upgraded like any other.

Alembic is imported only when there is something to do: opening an up-to-date workspace reads
one row.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Column, Connection, MetaData, String, Table, inspect, select

from ..errors import WorkspaceError
from .database import Database

if TYPE_CHECKING:
    from alembic.config import Config

    from .base import SQLStore

SCRIPTS = Path(__file__).with_name("migrations")
REVISIONS = ("0001", "0002", "0003", "0004", "0005", "0006", "0007", "0008", "0009")  # in order; the last is the head
HEAD = REVISIONS[-1]
LEGACY = {1: "0001", 2: "0002"}  # schema version of a release before Alembic -> its revision

_version = Table("alembic_version", MetaData(), Column("version_num", String(32), primary_key=True))


def managed(db: Database) -> bool:
    """Whether Alembic manages the database (its version table exists)."""
    return inspect(db.connection).has_table(_version.name)


def revision(db: Database) -> str | None:
    """Return the database's Alembic revision (None: Alembic never ran on it, or it is at the base)."""
    if not managed(db):
        return None
    found: str | None = db.execute(select(_version.c.version_num)).scalar()
    return found


def schema_version(db: Database) -> int:
    """Return how many schema revisions the database holds.

    0 for an empty database; more than :data:`REVISIONS` holds for one a newer segport made.
    """
    if not managed(db):
        return db.legacy_schema_version()
    current = revision(db)
    if current is None:
        return 0
    return REVISIONS.index(current) + 1 if current in REVISIONS else len(REVISIONS) + 1


def _newer(found: str) -> WorkspaceError:
    return WorkspaceError(f"the workspace schema ({found}) is newer than this segport ({HEAD}): upgrade segport")


def migrate(store: SQLStore) -> None:
    """Bring the store's schema to :data:`HEAD` in one write transaction (concurrent callers wait)."""
    if revision(store.db) == HEAD:
        return
    with store.transaction():
        db = store.db
        current = revision(db)  # again: another process may have migrated meanwhile
        if current is not None and current not in REVISIONS:
            raise _newer(f"revision {current}")
        stamp = None
        if not managed(db):
            legacy = db.legacy_schema_version()
            if legacy > max(LEGACY):
                raise _newer(f"v{legacy}")
            stamp = LEGACY.get(legacy)
        if current != HEAD:
            _alembic(db, stamp)


def alembic_config(connection: Connection) -> Config:
    """Alembic's configuration for the workspace scripts, running on ``connection``."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(SCRIPTS))
    config.attributes["connection"] = connection
    return config


def _alembic(db: Database, stamp: str | None) -> None:
    """Stamp a database of a release before Alembic at its revision, then upgrade to the head."""
    from alembic import command

    if not db.connection.in_transaction():
        db.connection.begin()  # only SQLAlchemy's notion (autocommit): Alembic then runs inside ours
    config = alembic_config(db.connection)
    if stamp is not None:
        command.stamp(config, stamp)
    command.upgrade(config, HEAD)
