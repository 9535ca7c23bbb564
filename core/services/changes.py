"""What an edit changed, field by field, as the audit log and the CLI show it (secrets masked)."""

from __future__ import annotations

from typing import Any, Collection, Mapping

HIDDEN = "(hidden)"  # what stands for a secret's value, old or new: never the value, nor part of it


def diff(
    old: Mapping[str, Any], new: Mapping[str, Any], *, prefix: str = "", hidden: Collection[str] = ()
) -> dict[str, dict[str, Any]]:
    """Return ``{prefix + key: {"old": ..., "new": ...}}`` for each key whose value differs.

    A key in ``hidden`` (a secret) shows :data:`HIDDEN` for a value and None for none.
    """
    changes: dict[str, dict[str, Any]] = {}
    for key in sorted(set(old) | set(new), key=str):
        before, after = old.get(key), new.get(key)
        if before == after:
            continue
        if key in hidden:
            before = None if before is None else HIDDEN
            after = None if after is None else HIDDEN
        changes[f"{prefix}{key}"] = {"old": before, "new": after}
    return changes


def describe(changes: Mapping[str, Mapping[str, Any]]) -> str:
    """Return the changes as one line for people: ``field: old -> new; ...`` (``-`` for none)."""
    return "; ".join(f"{field}: {_plain(c.get('old'))} -> {_plain(c.get('new'))}" for field, c in changes.items())


def _plain(value: Any) -> str:
    if value is None or value == "" or value == []:
        return "-"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)
