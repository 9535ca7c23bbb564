"""The kit for testing segport destinations: conformance suite, platform doubles, fakes, workspace inspection.

- :class:`DestinationConformance` (needs pytest and responses, i.e. ``segport[test]``): subclass it
  with your plugin's entry point and every contract check runs as a test (the checks come from
  :class:`ContractChecks` and :class:`WriterChecks`, the fixtures and helpers from :class:`DestinationKit`);
- :class:`DestinationResilience`: the slower crash and injected-fault checks, subclassed the same way;
- :class:`MemberReadChecks`: the checks of the optional ``BatchWriter.read_members``, added beside
  :class:`DestinationConformance` by plugins that read their members back;
- :class:`AudienceListChecks`: the checks of the optional ``Destination.list_audiences``, added the
  same way by plugins that list their audiences;
- :class:`PlatformDouble`, :class:`PlatformMember`, :class:`FaultControl`: what the kit reads and steers
  at a fake platform;
- :mod:`segport.sandboxing` (also importable as :mod:`segport.testing.sandbox`): the HTTP kit sandboxes
  are built on (faults, latency, test API);
- :mod:`segport.testing.fakes`: an in-memory destination; :mod:`segport.testing.operator`: the CLI
  in a subprocess; :mod:`segport.testing.files`: profile and key files; :func:`dump_database`: a
  workspace's database as text.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..store import DATABASE_URL_ENV, open_store
from ..store.base import SQLStore
from ..store.dump import dump
from .double import FaultControl, PlatformDouble, PlatformMember

if TYPE_CHECKING:
    from .conformance import DestinationConformance
    from .conformance_audiences import AudienceListChecks
    from .conformance_contract import ContractChecks
    from .conformance_members import MemberReadChecks
    from .conformance_resilience import DestinationResilience
    from .conformance_writer import WriterChecks
    from .kit import DestinationKit


def dump_database(home: str | Path, database_url: str | None = None) -> str:
    """Every table of a workspace's database as text: compare two dumps to prove nothing changed.

    The database is ``database_url`` (default ``SEGPORT_DATABASE_URL``), else ``segport.db`` in ``home``;
    see :func:`segport.store.dump.dump` for the format.
    """
    store = open_store(database_url or os.environ.get(DATABASE_URL_ENV) or None, Path(home))
    try:
        assert isinstance(store, SQLStore)
        return "\n".join(dump(store.db))
    finally:
        store.close()


KIT_CLASSES = {  # name -> the module defining it; imported (with pytest) only when a test asks for one
    "DestinationKit": "kit",
    "ContractChecks": "conformance_contract",
    "WriterChecks": "conformance_writer",
    "DestinationConformance": "conformance",
    "DestinationResilience": "conformance_resilience",
    "MemberReadChecks": "conformance_members",
    "AudienceListChecks": "conformance_audiences",
}


def __getattr__(name: str) -> Any:
    """Import the conformance kit (and pytest with it) only when a test asks for it."""
    if name in KIT_CLASSES:
        module = importlib.import_module(f".{KIT_CLASSES[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AudienceListChecks",
    "ContractChecks",
    "DestinationConformance",
    "DestinationKit",
    "DestinationResilience",
    "FaultControl",
    "MemberReadChecks",
    "PlatformDouble",
    "PlatformMember",
    "WriterChecks",
    "dump_database",
]
