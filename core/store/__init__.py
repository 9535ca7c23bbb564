"""The workspace store, chosen by a database URL.

- unset, or ``sqlite:///PATH``: the embedded SQLite store (default ``<home>/segport.db``);
- ``postgresql://USER:PASSWORD@HOST:PORT/DATABASE``: the PostgreSQL store (``segport[postgres]``).

Both implement :class:`~segport.store.interface.Store` (statements in SQLAlchemy Core, one schema in
:mod:`segport.store.schema`) and run the same Alembic migrations (:mod:`segport.store.upgrade`).
No SQL is written outside this package.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import WorkspaceError
from ..extras import install_hint
from .interface import Snapshot, Store
from .sqlite import DB_FILE, SQLiteStore, database_files

DATABASE_URL_ENV = "SEGPORT_DATABASE_URL"
_POSTGRES = ("postgresql", "postgres")


def database_url(url: str | None = None) -> str | None:
    """Return ``url``, else ``SEGPORT_DATABASE_URL``, else None (the SQLite file in the workspace folder)."""
    return url or os.environ.get(DATABASE_URL_ENV) or None


def sqlite_path(url: str | None, home: Path) -> Path | None:
    """Return the SQLite file a URL names (``<home>/segport.db`` for None), or None for a PostgreSQL URL."""
    if url is None:
        return home / DB_FILE
    scheme, sep, rest = url.partition("://")
    if sep and scheme.lower() == "sqlite" and rest.startswith("/") and len(rest) > 1:
        return Path(rest[1:])  # sqlite:///relative.db, sqlite:////absolute.db
    if sep and scheme.lower() in _POSTGRES:
        return None
    shown = scheme if sep else url.split(":", 1)[0][:20]
    raise WorkspaceError(
        f"unsupported database URL ({shown}://...): use postgresql://USER:PASSWORD@HOST:PORT/DATABASE, "
        "or sqlite:///PATH, in --database-url or SEGPORT_DATABASE_URL"
    )


def private_files(sqlite_file: Path | None) -> list[Path]:
    """Return the files of a SQLite database (with its WAL, SHM and journal); none for PostgreSQL (None)."""
    return database_files(sqlite_file) if sqlite_file is not None else []


def open_store(url: str | None, home: Path) -> Store:
    """Open (without migrating) the store ``url`` names; None is the SQLite file in ``home``."""
    path = sqlite_path(url, home)
    if path is not None:
        return SQLiteStore(path)
    try:
        from .postgres import PostgresStore
    except ImportError as exc:
        raise WorkspaceError(install_hint(exc, "postgres")) from None
    assert url is not None
    return PostgresStore(url)


__all__ = ["DATABASE_URL_ENV", "Snapshot", "Store", "database_url", "open_store", "private_files", "sqlite_path"]
