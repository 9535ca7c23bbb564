"""The catalog: customer profiles and the segments defined over them."""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence

from .. import readers
from ..errors import ConfigError, WorkspaceError
from ..filters import parse
from ..models import Page, Segment, SegmentCount, SegmentLoad
from ..pipeline.selection import Selection, refresh_filter_cache
from .attributes import unknown_attributes
from .context import Context, check_name, check_page


class Catalog:
    """Profiles' attributes and segments (static lists of keys, or filters); loads are :class:`.Profiles`'."""

    def __init__(self, context: Context) -> None:
        self.context = context

    def get_profile(self, *, key: str) -> dict[str, Any]:
        """One profile's attributes."""
        self.context.authorize("profiles.show")
        return self.context.store.get_profile(key)

    def load_segment(
        self, *, name: str, path: str | os.PathLike[str], key: str = "id", fmt: str | None = None
    ) -> SegmentLoad:
        """Create or replace a static segment from a file of profile keys."""
        ctx = self.context
        actor = ctx.authorize("segments.load")
        name = check_name("segment", name)
        keys = (k for _, k in readers.read_segment_keys(path, key=key, fmt=fmt))
        with ctx.store.transaction():
            segment = ctx.store.save_segment(name, "static", None, actor.name)
            members, unknown = ctx.store.replace_members(segment.id, keys)
            ctx.store.audit(actor.name, "segments.load", name, {"members": members, "unknown_keys": unknown})
        return SegmentLoad(segment=name, members=members - unknown, unknown_keys=unknown)

    def define_segment(self, *, name: str, where: str) -> Segment:
        """Create or update a segment defined by a filter expression.

        Its membership is evaluated now and cached; every profile load keeps it current.
        """
        ctx = self.context
        actor = ctx.authorize("segments.define")
        name = check_name("segment", name)
        expression = str(parse(where))
        with ctx.store.transaction() as db:
            segment = ctx.store.save_segment(name, "filter", expression, actor.name)
            refresh_filter_cache(db, [segment])
            ctx.store.audit(actor.name, "segments.define", name, {"where": expression})
        return segment

    def unknown_attributes(self, *, where: str) -> dict[str, list[str]]:
        """Return the attributes a filter names that no loaded profile has, each with the closest known names.

        Empty before the first profile load (nothing to check against).
        """
        ctx = self.context
        ctx.authorize("profiles.show")
        return unknown_attributes(ctx.store, sorted(parse(where).fields))

    def attribute_names(self) -> list[str]:
        """Return the attribute names the loaded profiles have (those of the first profiles by key), sorted."""
        self.context.authorize("profiles.show")
        return self.context.store.attribute_names()

    def list_segments(self) -> list[SegmentCount]:
        """Segments with their current member counts."""
        ctx = self.context
        ctx.authorize("segments.list")
        return self._counted(ctx.store.list_segments())

    def segment_page(self, *, limit: int = 50, offset: int = 0, search: str | None = None) -> Page[SegmentCount]:
        """Return a page of segments by name (``search``: the name holds it, any case) with their member counts."""
        ctx = self.context
        ctx.authorize("segments.list")
        check_page(limit, offset)
        found = ctx.store.segment_page(limit=limit, offset=offset, search=search)
        return Page(self._counted(found.items), found.total, found.limit, found.offset)

    def _counted(self, segments: Sequence[Segment]) -> list[SegmentCount]:
        """Return the segments with their exact member counts.

        A count recorded at the current catalog version is exact (every write that can change
        members renews the version). The others are counted in SQL, a static segment's members
        that have a profile, a filter segment's cached members once its cache is brought up to the
        last load (a cache that cannot be, in a read-only workspace, is completed by evaluating the
        filter over the profiles loaded since), then recorded at the version read before counting.
        """
        store = self.context.store
        version = store.catalog_version()
        counts: dict[int, int | None] = dict(store.counted_members([s.id for s in segments], version))
        uncounted = [segment for segment in segments if segment.id not in counts]
        if not uncounted:
            return [SegmentCount(segment, counts[segment.id] or 0) for segment in segments]
        try:
            store.refresh_filter_caches(uncounted)  # a cache only: the counts are exact without it
        except WorkspaceError:
            pass  # a read-only workspace still lists its segments
        counts.update({segment.id: store.member_count(segment) for segment in uncounted})
        behind = [segment for segment in uncounted if counts[segment.id] is None]
        if behind:
            reader = store.reader()
            try:
                counts.update({s.id: Selection(reader, [s]).materialise() for s in behind})
            finally:
                reader.close()
        try:
            with store.transaction():
                store.record_member_counts({s.id: counts[s.id] or 0 for s in uncounted}, version)
        except WorkspaceError:
            pass  # counted again next time
        return [SegmentCount(segment, counts[segment.id] or 0) for segment in segments]

    def remove_segment(self, *, name: str, confirm: Callable[[], None] | None = None) -> None:
        """Remove a segment no export uses; ``confirm`` is called once that is allowed (raising cancels it)."""
        ctx = self.context
        actor = ctx.authorize("segments.remove")
        segment = ctx.store.get_segment(name)
        users = [e.name for e in ctx.store.list_exports() if name in e.segments]
        if users:
            raise ConfigError(f"segment {name!r} is used by exports {', '.join(users)}: edit or remove them first")
        if confirm is not None:
            confirm()
        with ctx.store.transaction():
            ctx.store.remove_segment(segment.id)
            ctx.store.audit(actor.name, "segments.remove", name)
