"""The kit for testing segport destinations: conformance suite, platform doubles, fakes, workspace inspection.

- :class:`DestinationConformance` (needs pytest and responses, i.e. ``segport[test]``): subclass it
  with your plugin's entry point and every contract check runs as a test;
- :class:`PlatformDouble`, :class:`PlatformMember`: what the kit reads and steers at a fake platform;
- :mod:`segport.testing.sandbox`: the HTTP kit sandboxes are built on (faults, latency, test API);
- :mod:`segport.testing.fakes`: an in-memory destination; :mod:`segport.testing.operator`: the CLI
  in a subprocess; :func:`dump_database`: a workspace's database as text.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..store.sqlite import DB_FILE
from .double import PlatformDouble, PlatformMember

if TYPE_CHECKING:
    from .conformance import DestinationConformance


def dump_database(home: str | Path) -> str:
    """Every table of a workspace's database as SQL text: compare two dumps to prove nothing changed."""
    db = sqlite3.connect(Path(home) / DB_FILE)
    try:
        return "\n".join(db.iterdump())
    finally:
        db.close()


def __getattr__(name: str) -> Any:
    """Import the conformance kit (and pytest with it) only when a test asks for it."""
    if name == "DestinationConformance":
        from .conformance import DestinationConformance

        return DestinationConformance
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["DestinationConformance", "PlatformDouble", "PlatformMember", "dump_database"]
