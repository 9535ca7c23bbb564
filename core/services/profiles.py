"""Customer profiles: load (keyed by the workspace's key column), list, count and remove.

The workspace records the column (CSV) or field (JSONL) its profiles are keyed by at their first
load. A later load by another key would add every row as a new profile beside the old ones, so it
is refused unless it replaces every profile (a re-key). A workspace of an earlier release, which
recorded no key, has it inferred from its profiles: the attribute whose value is each one's key.

Removing profiles (by key or by filter, or a replacing load) leaves their exports' sync state: the
next run of each export plans their exits and removes their markers, never unsubscribing anyone.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .. import readers
from ..errors import ConfigError
from ..filters import parse
from ..models import ProfileLoad, ProfilePage, ProfileRemoval
from ..pipeline.selection import LoadEvaluator
from ..sources import display_name
from ..store import Store
from .context import Context

__all__ = ["DEFAULT_KEY", "KeyMismatch", "Profiles"]

DEFAULT_KEY = "id"  # the key column of a workspace's first load when none is given
_SAMPLE = 20  # profiles read to infer the key of a workspace that recorded none

#: ``confirm(load)`` sees a replacing load's counts before it is committed; raising cancels the load.
ConfirmLoad = Callable[[ProfileLoad], None]
#: ``confirm(count)`` sees how many profiles a removal will delete; raising cancels it.
ConfirmRemoval = Callable[[int], None]


class KeyMismatch(ConfigError):
    """A load names another key column than the workspace's profiles are keyed by."""

    def __init__(self, current: str, requested: str) -> None:
        super().__init__(
            f"this workspace's profiles are keyed by {current!r}, not {requested!r}: a load by {requested!r}"
            f" would add every row beside the existing profiles; load by {current!r}, or replace every profile"
            f" to re-key them by {requested!r}",
            param="profile_key",
        )
        self.current = current
        self.requested = requested


def _key_text(value: Any) -> str | None:
    """Return an attribute value as the readers turn a key into text (None: it could not be a key)."""
    if type(value) is str:
        return value.strip() or None
    if type(value) is int:
        return str(value)
    return None


def infer_key(sample: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """Return the attributes holding the key of every sampled profile (the candidates for the key column)."""
    if not sample:
        return []
    candidates = [name for name, value in sample[0][1].items() if _key_text(value) == sample[0][0]]
    return [name for name in candidates if all(_key_text(attrs.get(name)) == key for key, attrs in sample)]


class Profiles:
    """Profiles: loads checked against the workspace's key, and listing, counting, removal."""

    def __init__(self, context: Context) -> None:
        self.context = context

    # -- the key --------------------------------------------------------------------------------
    def key_column(self) -> str | None:
        """Return the column/field the profiles are keyed by (None: no profile loaded yet)."""
        self.context.authorize("profiles.show")
        return _current_key(self.context.store)

    # -- loading --------------------------------------------------------------------------------
    def load(
        self,
        *,
        path: str | os.PathLike[str],
        key: str | None = None,
        fmt: str | None = None,
        replace: bool = False,
        confirm: ConfirmLoad | None = None,
    ) -> ProfileLoad:
        """Load a CSV/JSONL file (``-``: standard input; gzip read) of profiles; all rows or none.

        ``key`` defaults to the workspace's key column (``id`` for a workspace without profiles);
        another one is refused (:class:`KeyMismatch`) unless ``replace``, which re-keys every
        profile. ``replace`` drops the profiles the file does not hold; when it drops any,
        ``confirm`` is called with the counts before the load is committed.
        """
        ctx = self.context
        actor = ctx.authorize("profiles.load")
        store = ctx.store
        source = display_name(path)
        with store.transaction() as db:
            current = _current_key(db, key)
            key = key or current or db.profile_key_column() or DEFAULT_KEY
            rekeyed_from = current if current is not None and current != key else None
            rows = readers.read_profiles(path, key=key, fmt=fmt)
            first = next(rows, None)  # a file without the key column says so first
            if rekeyed_from is not None and not replace:
                raise KeyMismatch(rekeyed_from, key)
            rows = itertools.chain([first] if first is not None else [], rows)
            evaluator = LoadEvaluator(db, db.list_segments())  # filter caches kept current on the way
            loaded = db.load_profiles(rows, replace=replace, source=source, on_chunk=evaluator)
            evaluator.finish(loaded.seq)
            unchanged = loaded.rows - loaded.added - loaded.updated
            result = ProfileLoad(
                loaded.rows, loaded.profiles, loaded.added, loaded.updated, unchanged, loaded.removed, key, rekeyed_from
            )
            if confirm is not None and loaded.removed:
                confirm(result)
            db.set_profile_key_column(key)
            detail: dict[str, Any] = {"rows": loaded.rows, "replace": replace}
            detail.update(added=loaded.added, updated=loaded.updated)
            detail.update({"removed": loaded.removed, "key": key} if replace else {})
            if rekeyed_from is not None:
                detail["rekeyed_from"] = rekeyed_from
            db.audit(actor.name, "profiles.load", source, detail)
        return result

    # -- reading --------------------------------------------------------------------------------
    def count(self, *, where: str | None = None) -> int:
        """Return how many profiles there are, or match the filter ``where``."""
        self.context.authorize("profiles.list")
        store = self.context.store
        if where is None:
            return store.profile_count()
        return sum(1 for _ in _matching(store, where))

    def page(self, *, where: str | None = None, limit: int = 50, offset: int = 0) -> ProfilePage:
        """Return the profiles (matching ``where``) from ``offset``, at most ``limit``, in key order."""
        self.context.authorize("profiles.list")
        store = self.context.store
        if where is None:
            return ProfilePage(store.first_profiles(limit, offset), store.profile_count(), offset, limit)
        found: list[tuple[str, dict[str, Any]]] = []
        total = 0
        for key, attrs in _matching(store, where):
            if offset <= total < offset + limit:
                found.append((key, attrs))
            total += 1
        return ProfilePage(found, total, offset, limit)

    # -- removal --------------------------------------------------------------------------------
    def remove(
        self,
        *,
        keys: Iterable[str] | None = None,
        where: str | None = None,
        confirm: ConfirmRemoval | None = None,
    ) -> ProfileRemoval:
        """Remove the profiles of ``keys``, or those matching ``where`` (exactly one of them).

        Each profile leaves its segments; its exports' sync state stays, so their next runs remove
        its markers. ``confirm`` is called with the count before anything is removed.
        """
        if (keys is None) == (where is None):
            raise ConfigError("name the profiles to remove: by key or by filter (one of them)", param="profiles")
        ctx = self.context
        actor = ctx.authorize("profiles.remove")
        store = ctx.store
        with store.transaction() as db:
            if keys is not None:
                wanted = {k.strip() for k in keys if k.strip()}
                found = db.existing_profile_keys(wanted)
                not_found = len(wanted) - len(found)
            else:
                assert where is not None
                found = [key for key, _ in _matching(db, where)]
                not_found = 0
            if confirm is not None and found:
                confirm(len(found))
            removed = db.remove_profiles(found)
            detail: dict[str, Any] = {"profiles": removed}
            detail.update({"keys": len(found) + not_found} if where is None else {"where": str(parse(where))})
            db.audit(actor.name, "profiles.remove", "profiles", detail)
        return ProfileRemoval(removed=removed, not_found=not_found)


def _current_key(store: Store, requested: str | None = None) -> str | None:
    """Return the key column the profiles are keyed by (None: there is no profile).

    A workspace that recorded none (an earlier release) has it inferred from its profiles:
    ``requested`` if the profiles' values agree with it, else the first attribute that does.
    """
    if store.profile_count() == 0:
        return None
    recorded = store.profile_key_column()
    if recorded is not None:
        return recorded
    candidates = infer_key(store.first_profiles(_SAMPLE))
    for preferred in (requested or DEFAULT_KEY, DEFAULT_KEY):
        if preferred in candidates:
            return preferred
    return candidates[0] if candidates else requested


def _matching(store: Store, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(key, attributes)`` of the profiles matching the filter, in key order."""
    flt = parse(where)
    for key, text in store.stream_profiles():
        attrs = json.loads(text)
        if flt.matches(attrs):
            yield key, attrs
