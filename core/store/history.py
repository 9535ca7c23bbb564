"""The run history's upkeep: one reject line per person per reason, and pruning old runs.

A run writes a reject line (:mod:`segport.pipeline.commit`) only for a (profile, address, status,
reason) no kept run of the export wrote before; :data:`~segport.store.schema.reject_lines` remembers
which run wrote each. Pruning deletes old runs with their outcomes and reject lines, and nothing
else: sync state, the sync ledger and the exports are what delta runs stand on. It also records the
highest run id it deleted (:data:`RUN_ID_HIGH_WATER`): a run id is never given twice (webhook
receivers deduplicate on it, the audit log and reject files name runs by it).
"""

from __future__ import annotations

from typing import Sequence

from sqlalchemy import and_, delete, func, insert, select
from sqlalchemy.orm import aliased

from .database import Repository, chunks
from .interface import OutcomeRow, Pruned, RejectKey, RejectRow
from .schema import outcomes, reject_lines, runs, settings

_j = reject_lines.c
_o = outcomes.c
_r = runs.c
LOST = ("rejected", "failed", "skipped")  # the outcomes a reject file holds
RUN_ID_HIGH_WATER = "run_id_high_water"  # the setting holding the highest run id pruning deleted


class History(Repository):
    """Reject lines and the pruning of old runs."""

    def reported_rejects(self, export_id: int, keys: Sequence[str]) -> dict[RejectKey, int]:
        """Return the reject lines of ``keys`` the export's runs wrote: (key, email, status, reason) -> run id."""
        found: dict[RejectKey, int] = {}
        for chunk in chunks(sorted(set(keys)), 500):
            query = select(_j.profile_key, _j.email, _j.status, _j.reason, _j.run_id).where(
                and_(_j.export_id == export_id, _j.profile_key.in_(chunk))
            )
            for row in self.db.execute(query):
                found[(row.profile_key, row.email, row.status, row.reason)] = row.run_id
        return found

    def save_reject_lines(self, export_id: int, run_id: int, rows: Sequence[OutcomeRow]) -> None:
        """Record the lines the run wrote to its reject file."""
        if rows:
            values = [
                {"export_id": export_id, "profile_key": r.key, "email": r.email, "status": r.status, "reason": r.reason,
                 "run_id": run_id}
                for r in rows
            ]
            self.db.execute(insert(reject_lines), values)

    def run_rejects(self, run_id: int, limit: int | None = None) -> tuple[int, list[RejectRow]]:
        """Return how many rejects the run has, and the first ``limit`` (all when None) in profile key order."""
        lost = and_(_o.run_id == run_id, _o.status.in_(LOST))
        total = int(self.db.execute(select(func.count()).select_from(outcomes).where(lost)).scalar_one())
        reporter = aliased(runs)
        query = (
            select(_o.profile_key, _o.email, _o.status, _o.reason, _o.reported_in, reporter.c.id.label("kept"))
            .select_from(outcomes.outerjoin(reporter, reporter.c.id == _o.reported_in))
            .where(lost)
            .order_by(_o.profile_key)
        )
        if limit is not None:
            query = query.limit(limit)
        rows = [
            RejectRow(row.profile_key, row.email, row.status, row.reason, row.reported_in or run_id,
                      row.reported_in is None or row.kept is not None)
            for row in self.db.execute(query)
        ]
        return total, rows

    def prune_runs(self, before: str, *, dry_run: bool = False) -> Pruned:
        """Delete the runs started before ``before`` (ISO 8601, UTC) with their outcomes and reject lines.

        A running run is never deleted; nor is anything else (sync state, ledger, exports).
        """
        old = and_(_r.started_at < before, _r.status != "running")
        run_ids = [int(i) for i in self.db.execute(select(_r.id).where(old).order_by(_r.id)).scalars()]
        removed = 0
        for chunk in chunks(run_ids, 500):
            if dry_run:
                count = select(func.count()).select_from(outcomes).where(_o.run_id.in_(chunk))
                removed += int(self.db.execute(count).scalar_one())
                continue
            removed += self.db.execute(delete(outcomes).where(_o.run_id.in_(chunk))).rowcount
            self.db.execute(delete(reject_lines).where(_j.run_id.in_(chunk)))
            self.db.execute(delete(runs).where(and_(_r.id.in_(chunk), _r.status != "running")))
        if run_ids and not dry_run:
            self._raise_run_id_high_water(run_ids[-1])
        return Pruned(run_ids, removed)

    def run_id_high_water(self) -> int:
        """Return the highest run id pruning deleted (0: none); new runs get larger ids."""
        value = self.db.execute(select(settings.c.value).where(settings.c.key == RUN_ID_HIGH_WATER)).scalar()
        return int(value) if value is not None else 0

    def _raise_run_id_high_water(self, run_id: int) -> None:
        if run_id > self.run_id_high_water():
            upsert = self.db.insert(settings).values(key=RUN_ID_HIGH_WATER, value=str(run_id))
            self.db.execute(upsert.on_conflict_do_update(index_elements=[settings.c.key], set_={"value": str(run_id)}))
