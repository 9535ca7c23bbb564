"""The store both backends share: the repositories on one connection, and what a backend supplies.

A backend (:mod:`segport.store.sqlite`, :mod:`segport.store.postgres`) opens connections, runs
transactions, loads profiles its fastest way and implements the run lock; every other statement
is here, written once in SQLAlchemy Core.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from typing import Any, Callable, Iterable, Sequence

from sqlalchemy import Engine

from ..models import Segment
from .catalog import Catalog
from .connections import Connections
from .database import Database
from .drift import DriftState
from .exports import Exports
from .governance import Governance
from .history import History
from .identities import Identities
from .interface import Loaded, ProfileRow
from .ledger import Ledger
from .lists import Lists
from .runs import Runs
from .snapshot import SQLSnapshot
from .upgrade import migrate, schema_version


class SQLStore(Governance, Identities, Connections, Catalog, Exports, DriftState, Ledger, Runs, History, Lists, ABC):
    """All persistent state of a workspace (:class:`~segport.store.interface.Store`) on a SQL database."""

    url: str  # where the store is, without a password (for messages and workers)

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.db = self._connect()

    @abstractmethod
    def _connect(self) -> Database:
        """Open a new connection, in autocommit mode (the backend's :class:`Database`)."""

    @abstractmethod
    def transaction(self) -> AbstractContextManager[Any]:
        """One write transaction: committed on success, rolled back on any exception."""

    @abstractmethod
    def load_profiles(
        self,
        rows: Iterable[ProfileRow],
        *,
        replace: bool,
        source: str,
        on_chunk: Callable[[list[Any]], None] | None = None,
    ) -> Loaded:
        """Upsert profile rows; all-or-nothing (see :meth:`segport.store.interface.Store.load_profiles`)."""

    def migrate(self) -> None:
        """Bring the schema up to date (a workspace of an earlier release is upgraded in place)."""
        migrate(self)

    def schema_version(self) -> int:
        """How many schema revisions the database holds (0: an empty database)."""
        return schema_version(self.db)

    def reader(self) -> SQLSnapshot:
        """Return a snapshot of the workspace on its own connection, for a run's long reads (the caller closes it)."""
        return SQLSnapshot(self._connect())

    def close(self) -> None:
        """Close the store's connection and dispose of its engine."""
        try:
            self.db.close()
        finally:
            self.engine.dispose()

    def refresh_filter_caches(self, segments: Sequence[Segment]) -> None:
        """Bring stale filter-segment caches up to date; no write transaction when none is stale."""
        from ..pipeline.selection import refresh_filter_cache, stale_filters

        if stale_filters(self, segments):
            with self.transaction() as store:
                refresh_filter_cache(store, segments)
