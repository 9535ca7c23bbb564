"""One connection to the workspace database, as the store's modules use it.

Statements are SQLAlchemy Core. Most run through :meth:`Database.execute`. The few that run once
per profile or per batch row (profile loads, sync state, the planner's scratch tables) are
:class:`Prepared`: compiled once per dialect, then run on the driver's own cursor with positional
parameters, which costs what hand-written SQL did.

A connection is in autocommit mode; the backend's :class:`Database` subclass opens and ends
transactions itself (SQLite ``BEGIN IMMEDIATE``; PostgreSQL ``BEGIN`` and an advisory lock), so a
read outside a transaction holds no lock.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Callable, ClassVar, Iterable, Iterator, Mapping, Sequence, TypeVar

from sqlalchemy import Connection, CursorResult, Table, column
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ClauseElement, Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.expression import TableClause

T = TypeVar("T")
CHUNK = 5000

# One encoder for every JSON document the store writes (compact, UTF-8 as is): building one per call
# costs more than encoding a profile.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
dumps: Callable[[Any], str] = _ENCODER.encode


def now() -> str:
    """Return the current UTC time as an ISO 8601 string (seconds precision)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def chunks(items: Iterable[T], size: int = CHUNK) -> Iterator[list[T]]:
    """``items`` in lists of ``size`` (the last one shorter, none empty): bulk writes without holding all."""
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class Prepared:
    """A statement run per row: compiled once per dialect, run with positional parameters.

    ``build`` makes the statement for a dialect (upserts differ); its bound parameters, in the
    order they appear in the SQL, must be ``params``, the order callers pass values in.
    """

    __slots__ = ("_sql", "build", "params")

    def __init__(self, build: Callable[[Dialect], ClauseElement], *params: str) -> None:
        self.build = build
        self.params = params
        self._sql: dict[str, str] = {}

    def sql(self, dialect: Dialect) -> str:
        """Return the statement as ``dialect`` runs it (compiled on first use)."""
        found = self._sql.get(dialect.name)
        if found is None:
            compiled = self.build(dialect).compile(dialect=dialect)
            assert isinstance(compiled, SQLCompiler)
            order = tuple(compiled.positiontup or ())
            if order != self.params:
                raise RuntimeError(f"prepared statement takes {order}, not {self.params}: {compiled}")
            found = self._sql[dialect.name] = str(compiled)
        return found


def insert(dialect: Dialect, table: Table) -> Any:
    """Return the dialect's INSERT for ``table``, which knows ``ON CONFLICT`` (SQLite's and PostgreSQL's agree)."""
    if dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    statement: Insert = sqlite_insert(table)
    return statement


class IndexedBy(TableClause):
    """A table that SQLite reads through ``index`` (``INDEXED BY``); the plain table elsewhere.

    For a query whose best index SQLite's planner cannot know without statistics.
    """

    inherit_cache = True

    def __init__(self, table: Table, index: str) -> None:
        super().__init__(table.name, *(column(c.name, c.type) for c in table.columns))
        self.index = index


@compiles(IndexedBy)
def _table(element: IndexedBy, compiler: SQLCompiler, **kw: Any) -> str:
    text: str = compiler.visit_table(element, **kw)  # type: ignore[no-untyped-call]
    return text


@compiles(IndexedBy, "sqlite")
def _indexed_table(element: IndexedBy, compiler: SQLCompiler, **kw: Any) -> str:
    text = _table(element, compiler, **kw)
    return f"{text} INDEXED BY {element.index}" if kw.get("asfrom") else text


class Database:
    """A connection to the workspace database (see the module docstring)."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.dialect = connection.dialect
        self.driver: Any = connection.connection.driver_connection  # sqlite3's or psycopg's connection

    # -- statements -------------------------------------------------------------------------------
    def execute(
        self, statement: Executable, parameters: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None
    ) -> CursorResult[Any]:
        """Run a Core statement (``parameters``: one mapping, or a list of them for executemany)."""
        return self.connection.execute(statement, parameters)

    def insert(self, table: Table) -> Any:
        """Return an INSERT into ``table`` that takes ``.on_conflict_do_update()`` and ``.on_conflict_do_nothing()``."""
        return insert(self.dialect, table)

    def sql(self, prepared: Prepared) -> str:
        """Return the prepared statement as this connection's dialect runs it."""
        return prepared.sql(self.dialect)

    def run(self, prepared: Prepared, parameters: Sequence[Any] = ()) -> Any:
        """Run a prepared statement once; returns the driver's cursor (``rowcount``, ``fetchone()``...)."""
        return self.driver.execute(prepared.sql(self.dialect), parameters)

    def run_many(self, prepared: Prepared, rows: Sequence[Sequence[Any]]) -> None:
        """Run a prepared statement for each row of parameters."""
        if rows:
            self.driver.cursor().executemany(prepared.sql(self.dialect), rows)

    def stream(self, prepared: Prepared, parameters: Sequence[Any] = ()) -> Iterator[Any]:
        """Return the rows of a long query as they come (PostgreSQL: through a server-side cursor)."""
        return iter(self.driver.execute(prepared.sql(self.dialect), parameters))

    # -- transactions: the backend's ------------------------------------------------------------------
    def begin_write(self) -> None:
        """Start a write transaction (serialised with every other writer)."""
        raise NotImplementedError

    def begin_snapshot(self) -> None:
        """Start a transaction whose reads all see one snapshot of the database."""
        raise NotImplementedError

    def commit(self) -> None:
        """Commit the transaction."""
        raise NotImplementedError

    def rollback(self) -> None:
        """End the transaction without its changes (nothing when none is open, or the connection is gone)."""
        raise NotImplementedError

    @property
    def in_transaction(self) -> bool:
        """Whether a transaction is open on the connection."""
        raise NotImplementedError

    def legacy_schema_version(self) -> int:
        """How many migrations of a release before Alembic ran on this database (0: none)."""
        raise NotImplementedError

    def close(self) -> None:
        """Close the connection."""
        self.connection.close()


def driver_error(exc: BaseException) -> BaseException:
    """Return the driver's own exception behind a SQLAlchemy one (whose text would quote statement and parameters)."""
    original = getattr(exc, "orig", None)
    return original if isinstance(original, BaseException) else exc


class Repository:
    """One concern of the store (users, connections...): Core statements on :attr:`db`.

    The store class combines the repositories; its backend supplies :attr:`db` and the transactions
    the callers wrap writes in.
    """

    db: Database
    integrity_errors: ClassVar[tuple[type[Exception], ...]] = (IntegrityError,)
