"""The guard on destination markers: two segments must never share one marker on an audience/list.

A marker is what names a segment at the platform (a Mailchimp tag, an option of a Campaign Monitor
field); platforms compare them case-insensitively, so segments ``VIP`` and ``vip`` exported to one
audience would add and remove the same tag and undo each other.
"""

from __future__ import annotations

from ..errors import ConfigError
from ..models import Connection, Export
from .context import Context


def check_markers(ctx: Context, export: Export, connection: Connection) -> None:
    """Raise ConfigError when a marker of ``export`` names another segment on its audience/list.

    Within the export, and against every other attached export of the same platform writing to the
    same audience/list; ``--force`` (the caller) skips the check.
    """
    destination = ctx.registry.get(connection.type)
    audience = destination.audience(export.options)
    mine = destination.markers(export.options, export.segments)
    seen: dict[str, tuple[str, str]] = {}
    for segment, marker in mine.items():
        folded = marker.casefold()
        if folded in seen and seen[folded][0] != segment:
            raise ConfigError(
                f"segments {seen[folded][0]!r} and {segment!r} of export {export.name!r} would share the "
                f"marker {seen[folded][1]!r}/{marker!r} (platforms compare markers case-insensitively): "
                "rename one segment, or pass --force",
                param="markers",
            )
        seen[folded] = (segment, marker)
    for other in ctx.store.list_exports():
        if other.id == export.id or other.connection_id is None:
            continue
        other_connection = ctx.store.get_connection_by_id(other.connection_id)
        if other_connection.type != connection.type or destination.audience(other.options) != audience:
            continue
        for segment, marker in destination.markers(other.options, other.segments).items():
            mine_segment, mine_marker = seen.get(marker.casefold(), (segment, marker))
            if mine_segment != segment:
                raise ConfigError(
                    f"export {export.name!r} and export {other.name!r} would share the marker "
                    f"{mine_marker!r}/{marker!r} on {connection.type} audience {audience} for segments "
                    f"{mine_segment!r} and {segment!r} (markers are compared case-insensitively, so each "
                    "run would undo the other's): rename a segment, or pass --force",
                    param="markers",
                )
