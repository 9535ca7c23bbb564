"""Profile attribute names an export or a segment names, checked against the loaded profiles.

There is no table of attribute names: the store answers with a query over the profiles (the first
profile that has a name ends it; only a name nobody has costs a scan, for the closest names).
Before the first profile load nothing is checked: any name is accepted.
"""

from __future__ import annotations

import difflib
from typing import Iterable, Mapping

from ..errors import InputError
from ..pipeline.mapper import source_parts
from ..store import Store


def closest(name: str, known: list[str]) -> list[str]:
    """Return up to three known attribute names closest to ``name``."""
    return difflib.get_close_matches(name, known, n=3, cutoff=0.6) or difflib.get_close_matches(
        name.lower(), [k.lower() for k in known], n=3, cutoff=0.6
    )


def unknown_attributes(store: Store, names: Iterable[str]) -> dict[str, list[str]]:
    """Return each of ``names`` no loaded profile has, with the closest known names (empty: none loaded)."""
    if not store.profile_count():
        return {}
    missing = [name for name in dict.fromkeys(names) if not store.has_attribute(name)]
    if not missing:
        return {}
    known = store.attribute_names()
    return {name: closest(name, known) for name in missing}


def check_sources(store: Store, email_field: str | None, mapping: Mapping[str, str]) -> None:
    """Refuse an email field or mapped source no loaded profile has (an ``a+b`` source: each part).

    Raises :class:`InputError` naming the attribute and the closest known ones.
    """
    wanted: list[tuple[str, str, str]] = []  # (param, what, attribute)
    if email_field:
        wanted.append(("email_field", "the email field", email_field))
    for dest, source in mapping.items():
        parts = source_parts(source)
        if parts and store.has_attribute(source):
            parts = ()  # an attribute named with a '+' is taken as it is
        wanted += [("mapping", f"destination field {dest!r}", part) for part in parts or (source,)]
    unknown = unknown_attributes(store, (name for _, _, name in wanted))
    for param, what, name in wanted:
        if name in unknown:
            near = unknown[name]
            hint = f"did you mean {' or '.join(repr(n) for n in near)}?" if near else "check its spelling"
            raise InputError(f"no loaded profile has the attribute {name!r} named for {what}: {hint}", param=param)
