"""A workspace database as text, table by table: two dumps compare equal when nothing changed."""

from __future__ import annotations

from typing import Iterator

from sqlalchemy import MetaData, select

from .database import Database


def dump(db: Database) -> Iterator[str]:
    """Yield the database as lines of text, table by table in name order.

    Each table (found by reflection, Alembic's own included) is a line ``CREATE TABLE "name"``,
    then a line ``INSERT INTO "name" VALUES(...)`` per row, in primary-key order.
    """
    schema = MetaData()
    schema.reflect(db.connection)
    for name, table in sorted(schema.tables.items()):
        yield f'CREATE TABLE "{name}"'
        for row in db.execute(select(table).order_by(*(table.primary_key or table.columns))):
            yield f'INSERT INTO "{name}" VALUES{tuple(row)!r}'
