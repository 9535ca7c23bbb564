"""Exports: what to send where (a connection, an audience, the data matching and the segments)."""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Callable, Mapping, Sequence

from ..config import validate
from ..contract import FieldSpec
from ..errors import ConfigError, RunError, SegportError
from ..models import Connection, Export, ExportEdit, ExportSummary, Page, Role, Share
from ..pipeline.mapper import Mapper
from ..pipeline.selection import MAX_SEGMENTS_PER_EXPORT
from ..scheduling import validate_cron
from .attributes import check_sources
from .changes import diff
from .connections import account_or_none, check_account
from .context import Context, check_name, check_page, spec_hint
from .history import absolute_reject_file
from .markers import check_markers
from .remap import keep_delivered, removed_only
from .visibility import check_export


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
        force: bool = False,
    ) -> Export:
        """Save an export (never runs it): connection, segments and the data matching.

        Markers colliding with another export's on the same audience/list are refused unless ``force``.
        """
        conn = self.context.usable_connection("exports.add", connection)
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
        if not force:
            check_markers(self.context, export, conn)
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
        unmap: Sequence[str] = (),
        options: Mapping[str, Any] | None = None,
        schedule: str | None = None,
        clear_schedule: bool = False,
        connection: str | None = None,
        check: bool = True,
        force: bool = False,
    ) -> ExportEdit:
        """Change an export's segments, data matching, options (merged; None removes one), schedule or connection.

        The sync state is kept by every edit that can keep it: ``unmap`` (fields no longer sent,
        left as they are at the platform) re-hashes what was delivered, so the next run sends no
        one for it. A change of what the options point at (another audience or list) resets it, so
        the next run sends everything there; so does a move to another platform or account, which
        is refused unless ``force``. Markers colliding with another export's are refused unless
        ``force``.
        """
        export, conn, reattached = self._to_edit(name, connection, force=force)
        target = (
            conn if connection in (None, conn.name) else self.context.usable_connection("exports.edit", str(connection))
        )
        new_mapping = _unmapped(name, {**export.mapping, **(mapping or {})}, unmap, mapping or {})
        changed = dataclasses.replace(
            export,
            connection=target.name,
            connection_id=target.id,
            segments=list(segments) if segments else export.segments,
            email_field=email_field or export.email_field,
            mapping=new_mapping,
            options={k: v for k, v in {**export.options, **(options or {})}.items() if v is not None},  # null: default
            schedule=None if clear_schedule else (schedule or export.schedule),
        )
        changed = self._validated(changed, target)
        # only what this edit names: an attribute that left the profiles since does not block other edits
        new_sources = {dest: src for dest, src in changed.mapping.items() if export.mapping.get(dest) != src}
        new_email = changed.email_field if changed.email_field != export.email_field else None
        check_sources(self.context.store, new_email, new_sources)
        before, after = self.context.registry.get(conn.type), self.context.registry.get(target.type)
        retarget = (
            reattached or conn.type != target.type or before.target(export.options) != after.target(changed.options)
        )
        notes: list[str] = []
        if target.id != conn.id:
            retarget = self._moved(export, conn, target, retarget=retarget, check=check, force=force, notes=notes)
        if not force and (changed.segments, changed.options, target.id) != (export.segments, export.options, conn.id):
            check_markers(self.context, changed, target)
        changes = _changes(export, changed)
        old_fields = {**export.mapping, **before.extra_fields(export.options)}
        new_fields = {**changed.mapping, **after.extra_fields(changed.options)}
        store = self.context.store
        with store.transaction():
            saved = store.update_export(changed)
            if target.id != conn.id or reattached:
                store.move_export(export.id, target.id, target.name)
                if not retarget:  # the same account's audience: what the platform reported still holds
                    store.copy_ledger(conn.id, target.id, after.audience(changed.options))
            if retarget:  # a new audience/list: nothing was delivered there yet
                store.reset_sync_state(export.id)
                notes.append("the sync state was reset: the next run sends everything")
            elif changed.email_field == export.email_field and removed_only(old_fields, new_fields):
                kept = keep_delivered(
                    store, export.id, Mapper(export.email_field, old_fields), Mapper(changed.email_field, new_fields)
                )
                notes.append(
                    f"fields no longer mapped are left as they are at the platform; {kept:,} delivered "
                    "record(s) stay delivered"
                )
            detail = {"changes": changes, "sync_state_reset": retarget}
            store.audit(self.context.user.name, "exports.edit", name, detail)
            saved = store.get_export(changed.name)
        return ExportEdit(saved, changes, "reset" if retarget else "kept", tuple(notes))

    def _to_edit(self, name: str, connection: str | None, *, force: bool) -> tuple[Export, Connection, bool]:
        """Return the export, its connection and whether it is a detached export being attached to ``connection``.

        Nothing vouches for what a detached export delivered (its connection and ledger are gone):
        attaching it resets the sync state, so it needs ``force``.
        """
        ctx = self.context
        ctx.identify("exports.edit")  # first: an unknown user learns nothing
        export = ctx.store.get_export(name)
        if export.connection_id is not None or connection is None:
            export, conn = self.export_for("exports.edit", name)
            return export, conn, False
        ctx.authorize("exports.edit", export)  # detached: no shared connection to lean on
        target = self.context.usable_connection("exports.edit", connection)
        if not force:
            raise ConfigError(
                f"export {name!r} is detached (its connection {export.connection!r} was removed): attaching it to "
                f"{target.name!r} resets its sync state, so the next run sends everything; pass --force to do so",
                param="connection",
            )
        return export, target, True

    def _moved(
        self,
        export: Export,
        old: Connection,
        new: Connection,
        *,
        retarget: bool,
        check: bool,
        force: bool,
        notes: list[str],
    ) -> bool:
        """Vet a move to another connection; return whether the sync state must go (another target or account).

        Refused unless ``force`` when it must: the move then resends everything.
        """
        why = (
            f"connection {new.name!r} is {new.type}, not {old.type}"
            if old.type != new.type
            else "the audience/list changes"
        )
        if not retarget and check:
            account = check_account(self.context, new)  # the new connection must work: refused credentials fail here
            previous = account_or_none(self.context, old)
            if previous is None:
                notes.append(f"connection {old.name!r} is refused by the platform: the accounts could not be compared")
            elif previous != account:
                retarget, why = True, f"connection {new.name!r} reaches {account}, not {previous}"
        if retarget and not force:
            raise ConfigError(
                f"moving export {export.name!r} to connection {new.name!r} loses its sync state ({why}): the next "
                "run would send everything; pass --force to do so, or keep the connection",
                param="connection",
            )
        return retarget

    def list(self) -> list[Export]:
        """Every export."""
        self.context.authorize("exports.list")
        return self.context.store.list_exports()

    def page(
        self,
        *,
        limit: int = 50,
        offset: int = 0,
        connection: str | None = None,
        enabled: bool | None = None,
        search: str | None = None,
    ) -> Page[ExportSummary]:
        """Return a page of exports by name, each with its last run (dry runs aside), and how many match.

        Filters: attached to ``connection``, ``enabled`` or not, the name holds ``search`` (any
        case). Non-admins see the exports of connections shared with contributors only: the rule
        applies before the page is cut, so its total counts no other export.
        """
        user = self.context.authorize("exports.list")
        check_page(limit, offset)
        shared_only = user.role is not Role.ADMIN
        store = self.context.store
        store.reap_stale_runs()
        found = store.export_page(
            limit=limit, offset=offset, connection=connection, enabled=enabled, search=search, shared_only=shared_only
        )
        home = self.context.home
        items = [
            ExportSummary(e.export, absolute_reject_file(home, e.last_run) if e.last_run else None) for e in found.items
        ]
        return dataclasses.replace(found, items=items)

    def get(self, *, name: str) -> Export:
        """One export."""
        user = self.context.authorize("exports.show")
        return check_export(self.context, user, self.context.store.get_export(name))

    def set_enabled(self, *, name: str, enabled: bool) -> Export:
        """Enable or disable an export (a disabled export is skipped by refreshes and schedules)."""
        action = "exports.enable" if enabled else "exports.disable"
        export, _ = self.export_for(action, name)
        store = self.context.store
        with store.transaction():
            saved = store.update_export(dataclasses.replace(export, enabled=enabled))
            store.audit(
                self.context.user.name,
                action,
                name,
                {"changes": diff({"enabled": export.enabled}, {"enabled": enabled})},
            )
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
                "attach it to another connection with 'exports edit --connection NAME --force', or remove it"
            )
        connection = ctx.store.get_connection_by_id(export.connection_id)
        ctx.authorize(action, export, shared=connection.share is Share.CONTRIBUTORS)
        return export, connection

    def _validated(self, export: Export, connection: Connection) -> Export:
        spec = self.context.registry.get(connection.type).spec()
        if not export.segments:
            raise ConfigError("an export needs at least one segment (only segments can be exported)", param="segments")
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
        try:
            schedule = validate_cron(export.schedule) if export.schedule else None
        except SegportError as exc:
            exc.param = exc.param or "schedule"  # the field at fault, for forms
            raise
        return dataclasses.replace(export, email_field=export.email_field.strip(), schedule=schedule)


def _unmapped(name: str, mapping: dict[str, str], unmap: Sequence[str], mapped: Mapping[str, str]) -> dict[str, str]:
    """Return ``mapping`` without the fields of ``unmap``, each of which it must map."""
    for dest in unmap:
        if dest in mapped:
            raise ConfigError(f"field {dest!r} is both mapped and unmapped: give it to --map or --unmap", param="unmap")
        if dest not in mapping:
            known = ", ".join(sorted(mapping)) or "none"
            raise ConfigError(f"export {name!r} maps no field {dest!r} to unmap (mapped: {known})", param="unmap")
    return {dest: src for dest, src in mapping.items() if dest not in unmap}


def _changes(old: Export, new: Export) -> dict[str, dict[str, Any]]:
    """Return what an edit changes, field by field (mapping and options per key)."""
    fields = ("connection", "segments", "email_field", "schedule")
    changes = diff({f: getattr(old, f) for f in fields}, {f: getattr(new, f) for f in fields})
    changes.update(diff(old.mapping, new.mapping, prefix="mapping."))
    changes.update(diff(old.options, new.options, prefix="options."))
    return changes


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
