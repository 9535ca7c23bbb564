"""Which profiles an export selects: the union of its segments, streamed in key order.

The selection is materialised in the run's snapshot (:class:`segport.store.Snapshot`: key,
segment bitmask), so it can be counted (for the cap) and diffed against the sync state without
holding it in memory.

Filter segments are evaluated in Python, but only for profiles that changed since the segment's
membership was last cached (see :func:`refresh_filter_cache`): a run after a small load evaluates
a few rows, not a million.
"""

from __future__ import annotations

import json
from typing import Iterable, Iterator, Mapping, Sequence, TypeVar

from ..errors import ConfigError
from ..filters import Filter, parse
from ..models import Segment
from ..store.interface import FilterCache, ProfileRow, Snapshot, StoredProfile

MAX_SEGMENTS_PER_EXPORT = 62  # one bit each in a 64-bit integer (SQLite's INTEGER, PostgreSQL's BIGINT)
_CHUNK = 5000
T = TypeVar("T")


def last_load(store: FilterCache) -> int:
    """Return the sequence number of the last profile load (0 before the first)."""
    return store.last_load()


def _chunks(rows: Iterable[T]) -> Iterator[list[T]]:
    chunk: list[T] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= _CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _matching(store: FilterCache, segment: Segment, since: int | None) -> Iterator[StoredProfile]:
    """Yield the profiles loaded after ``since`` that match the filter segment."""
    flt = parse(segment.expression or "")
    for profile in store.changed_profiles(since):
        if flt.matches(json.loads(profile.attrs)):
            yield profile


# (segment id, its filter, whether its cache may hold profiles that must leave it)
_CachedFilter = tuple[int, Filter, bool]


def stale_filters(
    store: FilterCache, segments: Sequence[Segment], top: int | None = None
) -> list[tuple[Segment, int | None]]:
    """Return the filter segments whose cache is behind the last profile load, with where each stands."""
    top = store.last_load() if top is None else top
    cached = [(s, store.cached_seq(s.id)) for s in segments if s.kind == "filter"]
    return [(s, since) for s, since in cached if since is None or since < top]


def refresh_filter_cache(store: FilterCache, segments: Sequence[Segment]) -> None:
    """Bring the cached membership of filter ``segments`` up to the last profile load.

    Call it inside a write transaction of ``store``. Only profiles loaded since the oldest cache
    was brought up to date are read, once for all the segments.
    """
    top = store.last_load()
    stale = stale_filters(store, segments, top)
    if not stale:
        return
    for segment, since in stale:
        if since is None:
            store.clear_filter_cache(segment.id)
    sinces = [since for _, since in stale]
    oldest = None if None in sinces else min(s for s in sinces if s is not None)
    filters = [(segment.id, parse(segment.expression or ""), since is not None) for segment, since in stale]
    for chunk in _chunks(store.changed_profiles(oldest)):
        _store_matches(store, filters, ((p.key, json.loads(p.attrs)) for p in chunk))
    store.set_cached_seq([s.id for s, _ in stale], top)


class LoadEvaluator:
    """Keeps up-to-date filter caches current during a profile load, from the rows being loaded.

    Call it with each chunk of loaded rows (``.key``, ``.attrs``), then :meth:`finish` with the
    load's sequence number. Stale caches are left to :func:`refresh_filter_cache`.
    """

    def __init__(self, store: FilterCache, segments: Sequence[Segment]) -> None:
        self.store = store
        current = store.last_load()
        self.filters: list[_CachedFilter] = [
            (s.id, parse(s.expression or ""), True)
            for s in segments
            if s.kind == "filter" and store.cached_seq(s.id) == current
        ]

    def __call__(self, chunk: Sequence[ProfileRow]) -> None:
        """Record which rows of a loaded chunk match each current filter."""
        _store_matches(self.store, self.filters, ((row.key, row.attrs) for row in chunk))

    def finish(self, seq: int) -> None:
        """Mark the caches kept current as up to date with load ``seq``."""
        self.store.set_cached_seq([f[0] for f in self.filters], seq)


def _store_matches(
    store: FilterCache, filters: Sequence[_CachedFilter], profiles: Iterable[tuple[str, Mapping[str, object]]]
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
    store.update_filter_cache(hits, misses)


class Selection:
    """The profiles in any of ``segments``, with the names of the segments each one is in."""

    def __init__(self, snapshot: Snapshot, segments: Sequence[Segment]) -> None:
        if len(segments) > MAX_SEGMENTS_PER_EXPORT:
            raise ConfigError(f"an export can carry at most {MAX_SEGMENTS_PER_EXPORT} segments; split it in two")
        self.snapshot = snapshot
        self.segments = list(segments)
        self._names = [s.name for s in segments]
        self._masks: dict[int, frozenset[str]] = {}
        self.count = 0  # profiles selected, once materialised

    def materialise(self) -> int:
        """Compute the selection in the snapshot; return how many profiles it holds.

        Exact whatever the cache holds: cached filter membership is used for profiles loaded up to
        ``cached_seq``; profiles loaded since are evaluated here.
        """
        snapshot = self.snapshot
        snapshot.clear_selection()
        for bit, segment in enumerate(self.segments):
            if segment.kind == "static":
                snapshot.select_static(segment.id, 1 << bit)
                continue
            since = snapshot.cached_seq(segment.id)
            if since is not None:
                snapshot.select_cached(segment.id, 1 << bit, since)
            for chunk in _chunks(_matching(snapshot, segment, since)):
                snapshot.select_profiles(chunk, 1 << bit)
        self.count = snapshot.selected()
        return self.count

    def names(self, mask: int) -> frozenset[str]:
        """Return the segment names of a bitmask (cached: few distinct masks exist)."""
        found = self._masks.get(mask)
        if found is None:
            found = frozenset(n for bit, n in enumerate(self._names) if mask >> bit & 1)
            self._masks[mask] = found
        return found
