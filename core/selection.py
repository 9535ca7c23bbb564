"""Which profiles an export selects: the union of its segments, streamed in key order.

The selection is materialised into a temporary table (key, segment bitmask) on a reader
connection, so it can be counted (for the cap) and then streamed without holding it in memory.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Iterator, Sequence

from .errors import ConfigError
from .filters import Filter, parse
from .models import Segment

MAX_SEGMENTS_PER_EXPORT = 62  # one bit each in a SQLite integer
_CHUNK = 5000


class Selection:
    """The profiles in any of ``segments``, with the names of the segments each one is in."""

    def __init__(self, db: sqlite3.Connection, segments: Sequence[Segment]) -> None:
        if len(segments) > MAX_SEGMENTS_PER_EXPORT:
            raise ConfigError(f"an export can carry at most {MAX_SEGMENTS_PER_EXPORT} segments; split it in two")
        self.db = db
        self.segments = list(segments)
        self._names = [s.name for s in segments]
        self._masks: dict[int, frozenset[str]] = {}

    def materialise(self) -> int:
        """Compute the selection; return how many profiles it holds."""
        db = self.db
        db.execute("CREATE TEMP TABLE IF NOT EXISTS sel (key TEXT PRIMARY KEY, segs INTEGER NOT NULL) WITHOUT ROWID")
        db.execute("DELETE FROM temp.sel")
        upsert = (
            "INSERT INTO temp.sel(key, segs) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET segs = segs | excluded.segs"
        )
        filters: list[tuple[int, Filter]] = []
        for bit, segment in enumerate(self.segments):
            if segment.kind == "static":
                db.execute(
                    "INSERT INTO temp.sel(key, segs) SELECT m.profile_key, ? FROM segment_members m "
                    "JOIN profiles p ON p.key = m.profile_key WHERE m.segment_id = ? "
                    "ON CONFLICT(key) DO UPDATE SET segs = segs | excluded.segs",
                    (1 << bit, segment.id),
                )
            else:
                filters.append((1 << bit, parse(segment.expression or "")))
        if filters:
            rows: list[tuple[str, int]] = []
            for key, attrs in db.execute("SELECT key, attrs FROM profiles"):
                profile = json.loads(attrs)
                mask = 0
                for bit, flt in filters:
                    if flt.matches(profile):
                        mask |= bit
                if mask:
                    rows.append((key, mask))
                    if len(rows) >= _CHUNK:
                        db.executemany(upsert, rows)
                        rows = []
            db.executemany(upsert, rows)
        return int(db.execute("SELECT count(*) FROM temp.sel").fetchone()[0])

    def names(self, mask: int) -> frozenset[str]:
        """The segment names of a bitmask (cached: few distinct masks exist)."""
        found = self._masks.get(mask)
        if found is None:
            found = frozenset(n for bit, n in enumerate(self._names) if mask >> bit & 1)
            self._masks[mask] = found
        return found

    def stream(self) -> Iterator[tuple[str, dict[str, Any], frozenset[str]]]:
        """(key, attributes, segment names) of every selected profile, in key order."""
        cursor = self.db.execute(
            "SELECT s.key, s.segs, p.attrs FROM temp.sel s JOIN profiles p ON p.key = s.key ORDER BY s.key"
        )
        for key, mask, attrs in cursor:
            yield key, json.loads(attrs), self.names(mask)

