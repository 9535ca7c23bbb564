"""The sync ledger: per connection, audience and address, what the platform last reported.

Writers report a person's platform status with their outcome (``Outcome.platform_status``), and
whether they archived the person themselves (``Outcome.archived``). The ledger keeps the last status
and, for people segport archived, the status they had just before: a run may re-add an archived
person only when the ledger shows segport archived them while they were ``subscribed``.
``exports verify`` records the statuses it reads back, and ``missing`` for a delivered person the
platform no longer knows; a later verify reports what the ledger already holds as known.
"""

from __future__ import annotations

from typing import Sequence

from sqlalchemy import and_, delete, literal, select

from .database import Repository, chunks, now
from .interface import LedgerEntry, LedgerUpdate
from .schema import exports, platform_ledger, sync_state

_l = platform_ledger.c
ARCHIVED = "archived"


class Ledger(Repository):
    """The sync ledger's reads and writes."""

    def ledger_entries(self, connection_id: int, audience: str, emails: Sequence[str]) -> dict[str, LedgerEntry]:
        """Return what the ledger holds for ``emails`` (absent addresses: never reported)."""
        found: dict[str, LedgerEntry] = {}
        for chunk in chunks(sorted(set(emails)), 500):
            rows = self.db.execute(
                select(_l.email, _l.status, _l.archived_from).where(
                    and_(_l.connection_id == connection_id, _l.audience == audience, _l.email.in_(chunk))
                )
            )
            found.update({row.email: LedgerEntry(row.email, row.status, row.archived_from) for row in rows})
        return found

    def archived_by_segport(self, connection_id: int, audience: str) -> dict[str, str]:
        """Return address -> status before, for people segport archived itself and has not seen since."""
        rows = self.db.execute(
            select(_l.email, _l.archived_from).where(
                and_(
                    _l.connection_id == connection_id,
                    _l.audience == audience,
                    _l.status == ARCHIVED,
                    _l.archived_from.is_not(None),
                )
            )
        )
        return {row.email: row.archived_from for row in rows}

    def copy_ledger(self, source_id: int, target_id: int, audience: str) -> int:
        """Copy the ledger of an audience from one connection to another, keeping what the target holds.

        Two connections to one account share its audiences: an export moved between them keeps what
        the platform reported. Returns the count of addresses copied.
        """
        copied = select(
            literal(target_id).label("connection_id"), _l.audience, _l.email, _l.status, _l.archived_from, _l.updated_at
        ).where(and_(_l.connection_id == source_id, _l.audience == audience))
        columns = ["connection_id", "audience", "email", "status", "archived_from", "updated_at"]
        statement = self.db.insert(platform_ledger).from_select(columns, copied).on_conflict_do_nothing()
        return int(self.db.execute(statement).rowcount or 0)

    def forget_connection_state(self, connection_id: int) -> None:
        """Forget what the connection's exports delivered and its ledger: the next runs send everything."""
        export_ids = select(exports.c.id).where(exports.c.connection_id == connection_id)
        self.db.execute(delete(sync_state).where(sync_state.c.export_id.in_(export_ids)))
        self.db.execute(delete(platform_ledger).where(_l.connection_id == connection_id))

    def save_ledger(self, connection_id: int, audience: str, updates: Sequence[LedgerUpdate]) -> None:
        """Record what the platform reported (call it inside a transaction).

        An archive by segport keeps the status just before: the one reported with it, else the
        ledger's last. Any other status clears it, except ``archived`` seen again (still ours, or not).
        """
        if not updates:
            return
        last = {u.email: u for u in updates}  # the latest report of an address wins
        known = self.ledger_entries(connection_id, audience, list(last))
        rows = []
        for email, update in last.items():
            before = known.get(email)
            if update.archived:
                previous = before.status if before is not None and before.status != ARCHIVED else None
                status, archived_from = ARCHIVED, update.status or previous
            elif update.status is None:
                continue
            elif update.status == ARCHIVED:
                status, archived_from = ARCHIVED, before.archived_from if before is not None else None
            else:
                status, archived_from = update.status, None
            rows.append(
                {
                    "connection_id": connection_id,
                    "audience": audience,
                    "email": email,
                    "status": status,
                    "archived_from": archived_from,
                    "updated_at": now(),
                }
            )
        if not rows:
            return
        statement = self.db.insert(platform_ledger)
        kept = {name: statement.excluded[name] for name in ("status", "archived_from", "updated_at")}
        self.db.execute(
            statement.on_conflict_do_update(index_elements=[_l.connection_id, _l.audience, _l.email], set_=kept),
            rows,
        )
