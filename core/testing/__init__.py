"""Test helpers for segport and for plugin authors: fakes and workspace inspection."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ..store.sqlite import DB_FILE


def dump_database(home: str | Path) -> str:
    """Every table of a workspace's database as SQL text: compare two dumps to prove nothing changed."""
    db = sqlite3.connect(Path(home) / DB_FILE)
    try:
        return "\n".join(db.iterdump())
    finally:
        db.close()


__all__ = ["dump_database"]
