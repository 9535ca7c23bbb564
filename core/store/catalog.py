"""Profiles, segments, their members and the filter-segment membership cache."""

from __future__ import annotations

import json
from typing import Any, Iterable, Iterator, Sequence

from sqlalchemy import (
    Row,
    bindparam,
    delete,
    exists,
    func,
    insert,
    literal_column,
    select,
    update,
)

from ..errors import AlreadyExists, NotFound
from ..models import Segment
from .database import Prepared, Repository, chunks, dumps, now
from .database import insert as dialect_insert
from .interface import StoredProfile
from .schema import filter_members, profiles, segment_members, segments, settings

PROFILE_SEQ = "profile_seq"  # the setting holding the last load's sequence number
PROFILE_KEY = "profile_key"  # the setting holding the column/field profiles are keyed by
# The setting holding the catalog's version: every write that can change a segment's members (a profile
# load or removal, a static segment's new members, a filter's new expression) takes a new one in its own
# transaction, so a member count recorded at a version is exact for as long as that version is current.
CATALOG_VERSION = "catalog_version"

_STORED = (profiles.c.key, profiles.c.attrs, profiles.c.seq)
ATTRIBUTE_SAMPLE = 10_000  # profiles whose attribute names are suggested for a misspelt one
_ATTRS_LIKE = Prepared(
    lambda d: select(profiles.c.attrs).where(profiles.c.attrs.like(bindparam("text"), escape="\\")), "text"
)
_FIRST_ATTRS = Prepared(
    lambda d: select(profiles.c.attrs)
    .order_by(profiles.c.key)
    .limit(literal_column(str(ATTRIBUTE_SAMPLE)))
    .offset(literal_column("0"))
)
_ALL_PROFILES = Prepared(lambda d: select(*_STORED))
_PROFILES_BY_KEY = Prepared(lambda d: select(profiles.c.key, profiles.c.attrs).order_by(profiles.c.key))
_PROFILES_SINCE = Prepared(lambda d: select(*_STORED).where(profiles.c.seq > bindparam("seq")), "seq")
_CACHE_HIT = Prepared(
    lambda d: (
        dialect_insert(d, filter_members)
        .values(segment_id=bindparam("segment_id"), profile_key=bindparam("profile_key"))
        .on_conflict_do_nothing()
    ),
    "segment_id",
    "profile_key",
)
_CACHE_MISS = Prepared(
    lambda d: delete(filter_members).where(
        filter_members.c.segment_id == bindparam("segment_id"), filter_members.c.profile_key == bindparam("profile_key")
    ),
    "segment_id",
    "profile_key",
)
_SEGMENT = (
    segments.c.id,
    segments.c.name,
    segments.c.kind,
    segments.c.expression,
    segments.c.created_by,
    segments.c.updated_at,
)


def _segment(row: Row[Any]) -> Segment:
    return Segment(row.id, row.name, row.kind, row.expression, row.created_by, row.updated_at)


class FilterCacheQueries(Repository):
    """The filter-segment membership cache (``filter_members`` up to ``segments.cached_seq``).

    Shared by the store (which keeps the cache current) and a run's snapshot (which reads it).
    """

    def last_load(self) -> int:
        """Return the sequence number of the last profile load (0 before the first)."""
        value = self.db.execute(select(settings.c.value).where(settings.c.key == PROFILE_SEQ)).scalar()
        return int(value) if value else 0

    def cached_seq(self, segment_id: int) -> int | None:
        """Return the load up to which the segment's cached membership is current (None: no cache)."""
        value = self.db.execute(select(segments.c.cached_seq).where(segments.c.id == segment_id)).scalar()
        return None if value is None else int(value)

    def changed_profiles(self, since: int | None) -> Iterator[StoredProfile]:
        """Return the profiles loaded after ``since`` (all of them when None), read as they come."""
        if since is None:
            return map(StoredProfile._make, self.db.stream(_ALL_PROFILES))
        return map(StoredProfile._make, self.db.stream(_PROFILES_SINCE, (since,)))

    def clear_filter_cache(self, segment_id: int) -> None:
        """Remove every cached member of the segment (before its cache is rebuilt)."""
        self.db.execute(delete(filter_members).where(filter_members.c.segment_id == segment_id))

    def update_filter_cache(self, hits: Sequence[tuple[int, str]], misses: Sequence[tuple[int, str]]) -> None:
        """Add (segment id, profile key) ``hits`` to the cache, remove ``misses``."""
        self.db.run_many(_CACHE_HIT, hits)
        self.db.run_many(_CACHE_MISS, misses)

    def set_cached_seq(self, segment_ids: Iterable[int], seq: int) -> None:
        """Mark the segments' cached membership current up to load ``seq``."""
        rows = [{"upto": seq, "segment": segment_id} for segment_id in segment_ids]
        if rows:
            statement = (
                update(segments).where(segments.c.id == bindparam("segment")).values(cached_seq=bindparam("upto"))
            )
            self.db.execute(statement, rows)


class Catalog(FilterCacheQueries):
    """Profiles and segments."""

    def catalog_version(self) -> int:
        """Return the catalog's version: a recorded member count is exact while it is current."""
        value = self.db.execute(select(settings.c.value).where(settings.c.key == CATALOG_VERSION)).scalar()
        return int(value) if value else 0

    def _new_catalog_version(self) -> None:
        """Take a new catalog version (inside the transaction of a write that can change members)."""
        value = str(self.catalog_version() + 1)
        upsert = self.db.insert(settings).values(key=CATALOG_VERSION, value=value)
        self.db.execute(upsert.on_conflict_do_update(index_elements=[settings.c.key], set_={"value": value}))

    def counted_members(self, segment_ids: Sequence[int], version: int) -> dict[int, int]:
        """Return the member counts recorded at catalog ``version`` for those of ``segment_ids`` that have one."""
        s = segments.c
        query = select(s.id, s.member_count).where(
            s.id.in_(segment_ids), s.counted_version == version, s.member_count.is_not(None)
        )
        return {row.id: int(row.member_count) for row in self.db.execute(query)}

    def record_member_counts(self, counts: dict[int, int], version: int) -> None:
        """Record member counts taken at catalog ``version`` (never served once another version is current)."""
        if counts:
            statement = (
                update(segments)
                .where(segments.c.id == bindparam("segment"))
                .values(member_count=bindparam("members"), counted_version=version)
            )
            self.db.execute(statement, [{"segment": key, "members": value} for key, value in counts.items()])

    def next_load(self) -> int:
        """Take the sequence number of a new profile load (inside its transaction)."""
        self._new_catalog_version()
        seq = self.last_load() + 1
        upsert = self.db.insert(settings).values(key=PROFILE_SEQ, value=str(seq))
        self.db.execute(upsert.on_conflict_do_update(index_elements=[settings.c.key], set_={"value": str(seq)}))
        return seq

    def profile_count(self) -> int:
        """Return how many profiles the workspace holds."""
        return int(self.db.execute(select(func.count()).select_from(profiles)).scalar_one())

    def load_counts(self, before: int, seq: int) -> tuple[int, int]:
        """Return ``(added, updated)`` by load ``seq``, given the profile count ``before`` it (call before deletes)."""
        added = self.profile_count() - before
        changed = select(func.count()).select_from(profiles).where(profiles.c.seq == seq)
        return added, int(self.db.execute(changed).scalar_one()) - added

    def profile_key_column(self) -> str | None:
        """Return the column/field the workspace's profiles are keyed by (None: not recorded yet)."""
        value = self.db.execute(select(settings.c.value).where(settings.c.key == PROFILE_KEY)).scalar()
        return str(value) if value is not None else None

    def set_profile_key_column(self, column: str) -> None:
        """Record the column/field the workspace's profiles are keyed by."""
        upsert = self.db.insert(settings).values(key=PROFILE_KEY, value=column)
        self.db.execute(upsert.on_conflict_do_update(index_elements=[settings.c.key], set_={"value": column}))

    def first_profiles(self, limit: int, offset: int = 0) -> list[tuple[str, dict[str, Any]]]:
        """Return ``(key, attributes)`` of the profiles ``offset`` to ``offset + limit`` by key."""
        page = select(profiles.c.key, profiles.c.attrs).order_by(profiles.c.key).limit(limit).offset(offset)
        return [(row.key, json.loads(row.attrs)) for row in self.db.execute(page)]

    def stream_profiles(self) -> Iterator[tuple[str, str]]:
        """Return ``(key, attributes as JSON text)`` of every profile in key order, read as they come."""
        return ((key, attrs) for key, attrs in self.db.stream(_PROFILES_BY_KEY))

    def existing_profile_keys(self, keys: Iterable[str]) -> list[str]:
        """Return which of ``keys`` have a profile (each once, sorted)."""
        found: set[str] = set()
        for batch in chunks(set(keys), 500):
            found.update(self.db.execute(select(profiles.c.key).where(profiles.c.key.in_(batch))).scalars())
        return sorted(found)

    def remove_profiles(self, keys: Iterable[str]) -> int:
        """Delete the profiles of ``keys`` with their segment memberships; return how many existed.

        Their sync state stays: the next run of an export that delivered them plans their exits.
        """
        removed = 0
        self._new_catalog_version()
        for batch in chunks(set(keys), 500):
            removed += self.db.execute(delete(profiles).where(profiles.c.key.in_(batch))).rowcount
            self.db.execute(delete(filter_members).where(filter_members.c.profile_key.in_(batch)))
            self.db.execute(delete(segment_members).where(segment_members.c.profile_key.in_(batch)))
        return removed

    def get_profile(self, key: str) -> dict[str, Any]:
        """Return a profile's attributes; raise NotFound for an unknown key."""
        attrs = self.db.execute(select(profiles.c.attrs).where(profiles.c.key == key)).scalar()
        if attrs is None:
            raise NotFound(f"unknown profile key {key!r} (load profiles with 'segport profiles load')")
        result: dict[str, Any] = json.loads(attrs)
        return result

    # -- attribute names (no table of their own: a query over the profiles, for checks only) -------
    def has_attribute(self, name: str) -> bool:
        """Return whether some profile has the attribute ``name`` (stops at the first that does).

        SQL only pre-selects the profiles whose text holds ``"name"`` (a LIKE, no JSON function:
        a profile of an older release may hold NaN, which SQLite's and PostgreSQL's JSON refuse);
        Python's JSON parser confirms it is an attribute name.
        """
        escaped = dumps(name).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = self.db.stream(_ATTRS_LIKE, (f"%{escaped}%",))
        return any(name in json.loads(attrs) for (attrs,) in rows)

    def attribute_names(self) -> list[str]:
        """Return the attribute names of the first profiles by key, sorted (names to suggest)."""
        names: set[str] = set()
        for (attrs,) in self.db.stream(_FIRST_ATTRS):
            names.update(json.loads(attrs))
        return sorted(names)

    # -- segments -------------------------------------------------------------------------------
    def find_segment(self, name: str) -> Segment | None:
        """Return the segment named ``name`` (None: there is none)."""
        row = self.db.execute(select(*_SEGMENT).where(segments.c.name == name)).first()
        return _segment(row) if row else None

    def get_segment(self, name: str) -> Segment:
        """Return the segment named ``name``; raise NotFound if there is none."""
        segment = self.find_segment(name)
        if segment is None:
            raise NotFound(f"unknown segment {name!r} (see 'segport segments list')", kind="segment", name=name)
        return segment

    def list_segments(self) -> list[Segment]:
        """Return every segment, by name."""
        return [_segment(r) for r in self.db.execute(select(*_SEGMENT).order_by(segments.c.name))]

    def save_segment(self, name: str, kind: str, expression: str | None, user: str) -> Segment:
        """Create a segment, or change the expression of one of the same kind; return it as stored.

        A changed expression voids the segment's cached membership. Raise AlreadyExists if a
        segment of another kind has the name.
        """
        existing = self.find_segment(name)
        if existing is None:
            values = {"name": name, "kind": kind, "expression": expression, "created_by": user, "updated_at": now()}
            self.db.execute(insert(segments).values(values))
            return self.get_segment(name)
        if existing.kind != kind:
            raise AlreadyExists(
                f"segment {name!r} exists as a {existing.kind} segment: remove it first "
                "('segport segments remove') or choose another name"
            )
        changes: dict[str, Any] = {"expression": expression, "updated_at": now()}
        if expression != existing.expression:  # the cached membership of the old filter is void
            changes.update(cached_seq=None, member_count=None)
            self._new_catalog_version()
            self.clear_filter_cache(existing.id)
        self.db.execute(update(segments).where(segments.c.id == existing.id).values(changes))
        return self.get_segment(name)

    def replace_members(self, segment_id: int, keys: Iterable[str]) -> tuple[int, int]:
        """Replace a static segment's members; returns (members, keys matching no profile)."""
        self._new_catalog_version()
        self.db.execute(delete(segment_members).where(segment_members.c.segment_id == segment_id))
        add = self.db.insert(segment_members).on_conflict_do_nothing()
        for batch in chunks(keys):
            self.db.execute(add, [{"segment_id": segment_id, "profile_key": key} for key in batch])
        m = segment_members.c
        members = select(func.count()).select_from(segment_members).where(m.segment_id == segment_id)
        unknown = members.where(~exists().where(profiles.c.key == m.profile_key))
        return int(self.db.execute(members).scalar_one()), int(self.db.execute(unknown).scalar_one())

    def remove_segment(self, segment_id: int) -> None:
        """Delete the segment, with its members and cached membership."""
        self.db.execute(delete(segments).where(segments.c.id == segment_id))
