"""What an export last delivered, person by person, with the profile it came from (for ``exports verify``)."""

from __future__ import annotations

from typing import Iterator

from sqlalchemy import select

from .database import Repository
from .interface import DeliveredPerson
from .schema import profiles, sync_state

_s, _p = sync_state.c, profiles.c


class DeliveredState(Repository):
    """The sync state of an export read back whole, joined with each profile's current attributes."""

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
