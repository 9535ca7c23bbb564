"""Exports and their sync state (what each destination acknowledged, per profile)."""

from __future__ import annotations

import json
from typing import Any, Sequence

from sqlalchemy import Row, bindparam, delete, insert, select, update

from ..errors import AlreadyExists, NotFound
from ..models import Export
from .database import Prepared, Repository, dumps, now
from .database import insert as dialect_insert
from .interface import DeliveredProfile, StateRow
from .schema import exports, profiles, sync_state

_e = exports.c
_COLUMNS = (
    _e.id,
    _e.name,
    _e.connection,
    _e.connection_id,
    _e.segments,
    _e.email_field,
    _e.mapping,
    _e.options,
    _e.schedule,
    _e.enabled,
    _e.owner,
    _e.created_at,
    _e.updated_at,
    _e.verify_every,
)
_STATE = ("export_id", "profile_key", "email", "record_hash", "markers", "seq", "mapping")


def _save_state(dialect: Any) -> Any:
    statement = dialect_insert(dialect, sync_state).values({name: bindparam(name) for name in _STATE})
    kept = {name: statement.excluded[name] for name in _STATE[2:]}
    return statement.on_conflict_do_update(index_elements=[sync_state.c.export_id, sync_state.c.profile_key], set_=kept)


_SAVE_STATE = Prepared(_save_state, *_STATE)


def _export(row: Row[Any]) -> Export:
    return Export(
        row.id,
        row.name,
        row.connection,
        row.connection_id,
        json.loads(row.segments),
        row.email_field,
        json.loads(row.mapping),
        json.loads(row.options),
        row.schedule,
        bool(row.enabled),
        row.owner,
        row.created_at,
        row.updated_at,
        row.verify_every,
    )


def _editable(export: Export) -> dict[str, Any]:
    """Return the columns an edit may change, with their new values."""
    return {
        "segments": dumps(export.segments),
        "email_field": export.email_field,
        "mapping": dumps(export.mapping),
        "options": dumps(export.options),
        "schedule": export.schedule,
        "enabled": int(export.enabled),
        "updated_at": now(),
    }


class Exports(Repository):
    """Exports, and what each one delivered."""

    def add_export(self, export: Export) -> Export:
        """Add an export and return it as stored; raise AlreadyExists if the name is taken."""
        values = {
            **_editable(export),
            "name": export.name,
            "connection": export.connection,
            "connection_id": export.connection_id,
            "owner": export.owner,
            "created_at": now(),
        }
        try:
            self.db.execute(insert(exports).values(values))
        except self.integrity_errors:
            raise AlreadyExists(f"an export named {export.name!r} exists already: choose another name") from None
        return self.get_export(export.name)

    def update_export(self, export: Export) -> Export:
        """Save the export's editable fields (segments, email field, mapping, options, schedule, enabled)."""
        self.db.execute(update(exports).where(_e.id == export.id).values(_editable(export)))
        return self.get_export(export.name)

    def move_export(self, export_id: int, connection_id: int, connection: str) -> None:
        """Attach the export to another connection (its sync state stays)."""
        values = {"connection_id": connection_id, "connection": connection, "updated_at": now()}
        self.db.execute(update(exports).where(_e.id == export_id).values(values))

    def get_export(self, name: str) -> Export:
        """Return the export named ``name``; raise NotFound if there is none."""
        row = self.db.execute(select(*_COLUMNS).where(_e.name == name)).first()
        if row is None:
            raise NotFound(f"unknown export {name!r} (see 'segport exports list')", kind="export", name=name)
        return _export(row)

    def list_exports(self) -> list[Export]:
        """Return every export, by name."""
        return [_export(r) for r in self.db.execute(select(*_COLUMNS).order_by(_e.name))]

    def remove_export(self, export_id: int) -> None:
        """Delete the export with its sync state (its runs stay)."""
        self.db.execute(delete(exports).where(_e.id == export_id))

    # -- sync state -----------------------------------------------------------------------------
    def reset_sync_state(self, export_id: int) -> None:
        """Forget what the export delivered: its next run sends everything."""
        self.db.execute(delete(sync_state).where(sync_state.c.export_id == export_id))

    def delivered_profiles(self, export_id: int, after: str = "", limit: int = 5000) -> list[DeliveredProfile]:
        """Return, by key after ``after``, the delivered profiles of an export that were not changed since.

        Each comes with its record hash and current attributes: what a data matching edit needs to
        tell whether the profile's delivered record is still its record.
        """
        s, p = sync_state.c, profiles.c
        query = (
            select(s.profile_key, s.email, s.record_hash, p.attrs)
            .join(profiles, p.key == s.profile_key)
            .where(s.export_id == export_id, s.profile_key > after, s.seq == p.seq)
            .order_by(s.profile_key)
            .limit(limit)
        )
        return [
            DeliveredProfile(r.profile_key, r.email, r.record_hash, json.loads(r.attrs)) for r in self.db.execute(query)
        ]

    def rehash_sync_state(self, export_id: int, rows: Sequence[tuple[str, bytes]], mapping: int) -> None:
        """Set the record hash (``rows``: key, hash) and data matching fingerprint of delivered profiles."""
        s = sync_state.c
        statement = (
            update(sync_state)
            .where(s.export_id == export_id, s.profile_key == bindparam("key"))
            .values(record_hash=bindparam("digest"), mapping=mapping)
        )
        self.db.execute(statement, [{"key": key, "digest": digest} for key, digest in rows])

    def save_sync_state(self, export_id: int, rows: Sequence[StateRow]) -> None:
        """Record what the destination acknowledged (replacing what was recorded for those profiles)."""
        self.db.run_many(_SAVE_STATE, [(export_id, *row) for row in rows])
