"""The catalog: customer profiles and the segments defined over them."""

from __future__ import annotations

import os
from typing import Any, Callable

from .. import readers
from ..errors import ConfigError, WorkspaceError
from ..filters import parse
from ..models import Segment, SegmentCount, SegmentLoad
from ..pipeline.selection import Selection, refresh_filter_cache
from .attributes import unknown_attributes
from .context import Context, check_name


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
        segments = ctx.store.list_segments()
        try:
            ctx.store.refresh_filter_caches(segments)  # a cache only: the counts are exact without it
        except WorkspaceError:
            pass  # a read-only workspace still lists its segments
        reader = ctx.store.reader()
        try:
            return [SegmentCount(segment, Selection(reader, [segment]).materialise()) for segment in segments]
        finally:
            reader.close()

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
