"""Drift: what an export last delivered, person by person, read back whole; how often schedules verify."""

from __future__ import annotations

import json
from typing import Any, Iterator

from sqlalchemy import select, update

from .database import Repository
from .interface import DeliveredPerson
from .schema import exports, profiles, runs, sync_state

_s, _p = sync_state.c, profiles.c


class DriftState(Repository):
    """An export's sync state read back with each profile's attributes; its verify-every setting."""

    def delivered_people(self, export_id: int) -> Iterator[DeliveredPerson]:
        """Yield each profile the export delivered, in key order (``attrs`` None: the profile is gone)."""
        statement = (
            select(_s.profile_key, _s.email, _s.record_hash, _s.markers, _s.seq, _s.mapping, _p.attrs)
            .select_from(sync_state.outerjoin(profiles, _p.key == _s.profile_key))
            .where(_s.export_id == export_id)
            .order_by(_s.profile_key)
        )
        for row in self.db.execute(statement):
            yield DeliveredPerson(
                row.profile_key, row.email, bytes(row.record_hash), row.markers, row.seq, row.mapping, row.attrs
            )

    def set_verify_every(self, export_id: int, every: int | None) -> None:
        """Make every ``every``-th scheduled run of the export verify and repair first (None: never)."""
        self.db.execute(update(exports).where(exports.c.id == export_id).values(verify_every=every))

    def scheduled_plans(self, export_id: int, limit: int) -> list[dict[str, Any]]:
        """Return the plans of the export's newest ``limit`` scheduled runs, newest first ({} for none)."""
        rows = self.db.execute(
            select(runs.c.plan)
            .where(runs.c.export_id == export_id, runs.c.trigger == "schedule")
            .order_by(runs.c.id.desc())
            .limit(limit)
        )
        return [json.loads(row.plan) if row.plan else {} for row in rows]
