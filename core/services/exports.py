"""Exports: what to send where (a connection, an audience, the data matching and the segments)."""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Callable, Mapping, Sequence

from ..config import validate
from ..contract import FieldSpec
from ..errors import ConfigError, NotFound, RunError
from ..models import Connection, Export, Share
from ..pipeline.selection import MAX_SEGMENTS_PER_EXPORT
from ..scheduling import validate_cron
from .attributes import check_sources
from .context import Context, check_name, spec_hint


class Exports:
    """Exports, used by whoever may use their connection (admins; contributors on shared ones)."""

    def __init__(self, context: Context) -> None:
        self.context = context

    def add(
        self,
        *,
        name: str,
        connection: str,
        segments: Sequence[str],
        email_field: str,
        mapping: Mapping[str, str] | None = None,
        options: Mapping[str, Any] | None = None,
        schedule: str | None = None,
        enabled: bool = True,
    ) -> Export:
        """Save an export (never runs it): connection, segments and the data matching."""
        conn = self._usable_connection("exports.add", connection)
        export = Export(
            id=0,
            name=check_name("export", name),
            connection=conn.name,
            connection_id=conn.id,
            segments=list(segments),
            email_field=email_field,
            mapping=dict(mapping or {}),
            options=dict(options or {}),
            schedule=schedule,
            enabled=enabled,
            owner=self.context.user.name,
            created_at="",
            updated_at="",
        )
        export = self._validated(export, conn)
        store = self.context.store
        check_sources(store, export.email_field, export.mapping)
        with store.transaction():
            saved = store.add_export(export)
            store.audit(export.owner, "exports.add", saved.name, {"connection": conn.name})
        return saved

    def edit(
        self,
        *,
        name: str,
        segments: Sequence[str] | None = None,
        email_field: str | None = None,
        mapping: Mapping[str, str] | None = None,
        options: Mapping[str, Any] | None = None,
        schedule: str | None = None,
        clear_schedule: bool = False,
    ) -> Export:
        """Change an export's segments, data matching, options (merged) or schedule.

        A change of what the options point at (another audience or list) resets the sync state,
        so the next run sends everything there.
        """
        export, conn = self.export_for("exports.edit", name)
        changed = dataclasses.replace(
            export,
            segments=list(segments) if segments else export.segments,
            email_field=email_field or export.email_field,
            mapping={**export.mapping, **(mapping or {})},
            options={**export.options, **(options or {})},
            schedule=None if clear_schedule else (schedule or export.schedule),
        )
        changed = self._validated(changed, conn)
        # only what this edit names: an attribute that left the profiles since does not block other edits
        new_sources = {dest: src for dest, src in changed.mapping.items() if export.mapping.get(dest) != src}
        new_email = changed.email_field if changed.email_field != export.email_field else None
        check_sources(self.context.store, new_email, new_sources)
        destination = self.context.registry.get(conn.type)
        retarget = destination.target(export.options) != destination.target(changed.options)
        store = self.context.store
        with store.transaction():
            saved = store.update_export(changed)
            if retarget:  # a new audience/list: nothing was delivered there yet
                store.reset_sync_state(export.id)
            store.audit(self.context.user.name, "exports.edit", name, {"sync_state_reset": retarget})
        return saved

    def list(self) -> list[Export]:
        """Every export."""
        self.context.authorize("exports.list")
        return self.context.store.list_exports()

    def get(self, *, name: str) -> Export:
        """One export."""
        self.context.authorize("exports.show")
        return self.context.store.get_export(name)

    def set_enabled(self, *, name: str, enabled: bool) -> Export:
        """Enable or disable an export (a disabled export is skipped by refreshes and schedules)."""
        action = "exports.enable" if enabled else "exports.disable"
        export, _ = self.export_for(action, name)
        store = self.context.store
        with store.transaction():
            saved = store.update_export(dataclasses.replace(export, enabled=enabled))
            store.audit(self.context.user.name, action, name)
        return saved

    def remove(self, *, name: str, confirm: Callable[[], None] | None = None) -> None:
        """Remove an export, its sync state and its schedule (its runs stay in the history).

        ``confirm`` is called once the removal is allowed and the export found; raising cancels it.
        """
        self.context.identify("exports.remove")  # an unknown user learns nothing, not even which exports exist
        store = self.context.store
        export = store.get_export(name)
        if export.connection_id is None:
            self.context.authorize("exports.remove", export)
        else:
            self.export_for("exports.remove", name)
        if confirm is not None:
            confirm()
        with store.transaction():
            store.remove_export(export.id)
            store.audit(self.context.user.name, "exports.remove", name)

    # -- for the other services -------------------------------------------------------------------
    def export_for(self, action: str, name: str) -> tuple[Export, Connection]:
        """Return an attached export and its connection, once the acting user may do ``action`` on it."""
        ctx = self.context
        ctx.identify(action)  # first: an unknown user learns nothing
        export = ctx.store.get_export(name)
        if export.connection_id is None:
            ctx.authorize(action, export)
            raise RunError(
                f"export {name!r} is detached: its connection {export.connection!r} was removed; "
                "remove the export, or add a connection and a new export"
            )
        connection = ctx.store.get_connection_by_id(export.connection_id)
        ctx.authorize(action, export, shared=connection.share is Share.CONTRIBUTORS)
        return export, connection

    def _usable_connection(self, action: str, name: str) -> Connection:
        ctx = self.context
        ctx.identify(action)  # first: an unknown user learns nothing
        try:
            connection = ctx.store.get_connection(name)
        except NotFound:
            ctx.authorize(action)
            raise
        ctx.authorize(action, connection, shared=connection.share is Share.CONTRIBUTORS)
        return connection

    def _validated(self, export: Export, connection: Connection) -> Export:
        spec = self.context.registry.get(connection.type).spec()
        if not export.segments:
            raise ConfigError(
                "an export needs at least one segment (only segments can be exported)", param="segments"
            )
        if len(set(export.segments)) != len(export.segments):
            raise ConfigError("a segment is listed twice: list each segment once", param="segments")
        if len(export.segments) > MAX_SEGMENTS_PER_EXPORT:
            raise ConfigError(f"an export can carry at most {MAX_SEGMENTS_PER_EXPORT} segments; split it in two")
        for segment in export.segments:
            self.context.store.get_segment(segment)
        if not export.email_field or not export.email_field.strip():
            raise ConfigError(
                "the email field is required: name the profile attribute holding the email", param="email_field"
            )
        _check_mapping(export.mapping, spec.fields)
        validate(export.options, spec.export_schema, f"export {export.name!r} options", hint=spec_hint(connection.type))
        schedule = validate_cron(export.schedule) if export.schedule else None
        return dataclasses.replace(export, email_field=export.email_field.strip(), schedule=schedule)


def _check_mapping(mapping: Mapping[str, str], fields: FieldSpec) -> None:
    pattern = re.compile(fields.pattern)
    for dest, src in mapping.items():
        if dest.lower() == "email":
            raise ConfigError("the email is matched by the email field, not by the field mapping", param="email_field")
        if not src:
            raise ConfigError(f"destination field {dest!r} is mapped to no profile attribute", param="mapping")
        if dest not in fields.known and not (fields.allow_other and pattern.match(dest)):
            known = ", ".join(fields.known) or "none"
            raise ConfigError(f"unknown destination field {dest!r} (known: {known})", param="mapping")
