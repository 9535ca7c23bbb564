"""Keep the sync state when fields leave an export's data matching.

A field no longer mapped is no longer sent, and both platforms keep the value of a field a write
does not carry: what they hold for a delivered person is still what the smaller matching would
send. So an export whose matching only lost fields re-hashes its delivered records instead of
resending them, and the next run sends only people whose other fields changed.
"""

from __future__ import annotations

from typing import Mapping

from ..pipeline.mapper import Mapped, Mapper
from ..store import Store


def removed_only(before: Mapping[str, str], after: Mapping[str, str]) -> bool:
    """Return whether ``after`` is ``before`` minus some fields (and not the same)."""
    return before != after and after.items() <= before.items()


def keep_delivered(store: Store, export_id: int, before: Mapper, after: Mapper) -> int:
    """Re-hash the delivered records still current under ``before`` with ``after``; return their count.

    Call it inside the edit's transaction. A profile changed since its delivery, or whose delivered
    record differs (a failed one), keeps its old hash, so the next run looks at it as before.
    """
    kept, last = 0, ""
    while rows := store.delivered_profiles(export_id, last):
        updates = []
        for row in rows:
            old = before.map(row.attrs)
            if isinstance(old, Mapped) and old.digest == row.digest and old.email == row.email:
                new = after.map(row.attrs)
                if isinstance(new, Mapped):
                    updates.append((row.key, new.digest))
        if updates:
            store.rehash_sync_state(export_id, updates, after.fingerprint)
        kept += len(updates)
        last = rows[-1].key
    return kept
