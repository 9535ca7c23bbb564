"""Which profiles an export selects: the union of its segments, streamed in key order.

The selection is materialised into a temporary table (key, segment bitmask) on a reader
connection, so it can be counted (for the cap) and diffed in SQL without holding it in memory.

Filter segments are evaluated in Python, but only for profiles that changed since the segment's
membership was last cached (``filter_members`` up to ``segments.cached_seq``, see
:func:`refresh_filter_cache`): a run after a small load evaluates a few rows, not a million.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Iterator, Mapping, Sequence, TypeVar

from .errors import ConfigError
from .filters import Filter, parse
from .models import Segment
from .store.base import Database, stream

MAX_SEGMENTS_PER_EXPORT = 62  # one bit each in a 64-bit integer (SQLite's INTEGER, PostgreSQL's BIGINT)
_CHUNK = 5000
T = TypeVar("T")


def _changed_profiles(db: Database, since: int | None) -> Iterator[tuple[str, str]]:
    """(key, attrs JSON) of profiles loaded after ``since`` (all of them when None)."""
    if since is None:
        return stream(db, "SELECT key, attrs FROM profiles")
    return stream(db, "SELECT key, attrs FROM profiles WHERE seq > ?", (since,))


def last_load(db: Database) -> int:
    """The sequence number of the last profile load (0 before the first)."""
    row = db.execute("SELECT value FROM settings WHERE key = 'profile_seq'").fetchone()
    return int(row[0]) if row else 0


def _cached_seq(db: Database, segment_id: int) -> int | None:
    row = db.execute("SELECT cached_seq FROM segments WHERE id = ?", (segment_id,)).fetchone()
    return None if row is None or row[0] is None else int(row[0])


def _chunks(rows: Iterable[T]) -> Iterator[list[T]]:
    chunk: list[T] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= _CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _evaluate(db: Database, segment: Segment, since: int | None) -> Iterator[tuple[str, bool]]:
    """(key, matches) for every profile loaded after ``since``."""
    flt = parse(segment.expression or "")
    for key, attrs in _changed_profiles(db, since):
        yield key, flt.matches(json.loads(attrs))


# (segment id, its filter, whether its cache may hold profiles that must leave it)
_CachedFilter = tuple[int, Filter, bool]


def stale_filters(
    db: Database, segments: Sequence[Segment], top: int | None = None
) -> list[tuple[Segment, int | None]]:
    """The filter segments whose cache is behind the last profile load, with where each stands."""
    top = last_load(db) if top is None else top
    cached = [(s, _cached_seq(db, s.id)) for s in segments if s.kind == "filter"]
    return [(s, since) for s, since in cached if since is None or since < top]


def refresh_filter_cache(db: Database, segments: Sequence[Segment]) -> None:
    """Bring the cached membership of filter ``segments`` up to the last profile load.

    Call it inside a write transaction of ``db``. Only profiles loaded since the oldest cache was
    brought up to date are read, once for all the segments.
    """
    top = last_load(db)
    stale = stale_filters(db, segments, top)
    if not stale:
        return
    for segment, since in stale:
        if since is None:
            db.execute("DELETE FROM filter_members WHERE segment_id = ?", (segment.id,))
    sinces = [since for _, since in stale]
    oldest = None if None in sinces else min(s for s in sinces if s is not None)
    filters = [(segment.id, parse(segment.expression or ""), since is not None) for segment, since in stale]
    for chunk in _chunks(_changed_profiles(db, oldest)):
        _store_matches(db, filters, ((key, json.loads(attrs)) for key, attrs in chunk))
    db.executemany("UPDATE segments SET cached_seq = ? WHERE id = ?", [(top, s.id) for s, _ in stale])


class LoadEvaluator:
    """Keeps up-to-date filter caches current during a profile load, from the rows being loaded.

    Call it with each chunk of loaded rows (``.key``, ``.attrs``), then :meth:`finish` with the
    load's sequence number. Stale caches are left to :func:`refresh_filter_cache`.
    """

    def __init__(self, db: Database, segments: Sequence[Segment]) -> None:
        self.db = db
        current = last_load(db)
        self.filters: list[_CachedFilter] = [
            (s.id, parse(s.expression or ""), True)
            for s in segments
            if s.kind == "filter" and _cached_seq(db, s.id) == current
        ]

    def __call__(self, chunk: Sequence[Any]) -> None:
        _store_matches(self.db, self.filters, ((row.key, row.attrs) for row in chunk))

    def finish(self, seq: int) -> None:
        self.db.executemany("UPDATE segments SET cached_seq = ? WHERE id = ?", [(seq, f[0]) for f in self.filters])


def _store_matches(
    db: Database, filters: Sequence[_CachedFilter], profiles: Iterable[tuple[str, Mapping[str, Any]]]
) -> None:
    """Put each profile in the cache of every filter it matches; take it out of the others."""
    hits: list[tuple[int, str]] = []
    misses: list[tuple[int, str]] = []
    for key, profile in profiles:
        for segment_id, flt, incremental in filters:
            if flt.matches(profile):
                hits.append((segment_id, key))
            elif incremental:
                misses.append((segment_id, key))
    db.executemany("INSERT OR IGNORE INTO filter_members VALUES (?, ?)", hits)
    db.executemany("DELETE FROM filter_members WHERE segment_id = ? AND profile_key = ?", misses)


class Selection:
    """The profiles in any of ``segments``, with the names of the segments each one is in."""

    def __init__(self, db: Database, segments: Sequence[Segment]) -> None:
        if len(segments) > MAX_SEGMENTS_PER_EXPORT:
            raise ConfigError(f"an export can carry at most {MAX_SEGMENTS_PER_EXPORT} segments; split it in two")
        self.db = db
        self.segments = list(segments)
        self._names = [s.name for s in segments]
        self._masks: dict[int, frozenset[str]] = {}
        self.count = 0  # profiles selected, once materialised

    def materialise(self) -> int:
        """Compute the selection into ``temp.sel``; return how many profiles it holds.

        Exact whatever the cache holds: cached filter membership is used for profiles loaded up to
        ``cached_seq``; profiles loaded since are evaluated here.
        """
        db = self.db
        db.execute("CREATE TEMP TABLE IF NOT EXISTS sel (key TEXT PRIMARY KEY, segs INTEGER NOT NULL) WITHOUT ROWID")
        db.execute("DELETE FROM temp.sel")
        upsert = "ON CONFLICT(key) DO UPDATE SET segs = sel.segs | excluded.segs"
        for bit, segment in enumerate(self.segments):
            if segment.kind == "static":
                db.execute(
                    "INSERT INTO temp.sel(key, segs) SELECT m.profile_key, ? FROM segment_members m "
                    f"JOIN profiles p ON p.key = m.profile_key WHERE m.segment_id = ? {upsert}",
                    (1 << bit, segment.id),
                )
                continue
            since = _cached_seq(db, segment.id)
            if since is not None:
                db.execute(
                    "INSERT INTO temp.sel(key, segs) SELECT m.profile_key, ? FROM filter_members m "
                    f"JOIN profiles p ON p.key = m.profile_key WHERE m.segment_id = ? AND p.seq <= ? {upsert}",
                    (1 << bit, segment.id, since),
                )
            for chunk in _chunks(_evaluate(db, segment, since)):
                db.executemany(f"INSERT INTO temp.sel(key, segs) VALUES (?, ?) {upsert}", [
                    (key, 1 << bit) for key, hit in chunk if hit
                ])
        self.count = int(db.execute("SELECT count(*) FROM temp.sel").fetchone()[0])
        return self.count

    def names(self, mask: int) -> frozenset[str]:
        """The segment names of a bitmask (cached: few distinct masks exist)."""
        found = self._masks.get(mask)
        if found is None:
            found = frozenset(n for bit, n in enumerate(self._names) if mask >> bit & 1)
            self._masks[mask] = found
        return found
