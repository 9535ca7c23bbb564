"""A kit export run in a child process that dies (SIGKILL) or stalls at a chosen point: the crash checks.

``python -m segport.testing.killed_run HOME EXPORT MODULE:CLASS JOURNAL POINT BATCH_SIZE`` opens the
workspace in ``HOME`` as the kit's user and runs ``EXPORT`` through the destination class ``MODULE:CLASS``
(importable here: the child imports it again), appending one JSON line per event to ``JOURNAL``:
``send`` (a ``write_batch`` starts, its record keys), ``answer`` (one returned, the keys it reported
delivered), ``commit`` (a batch's outcomes were committed) and ``stall``. ``POINT`` is ``answer:N``
(SIGKILL once the Nth write is answered, before its commit), ``commit:N`` (SIGKILL once the Nth batch is
committed) or ``stall:N`` (stop committing after the Nth batch, for the parent to kill).
``BATCH_SIZE`` (0: the destination's own) makes batches smaller.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import threading
from typing import Any, Sequence

from ..contract import BatchResult, Destination
from ..hookspecs import hookimpl
from ..models import Export, Run
from ..plugins import make_manager
from ..registry import Registry
from ..workspace import Workspace
from .kit_export import KIT_RETRY, USER, WriteWatch, journal_writer, watched


class _Commits:
    """The hook plugin counting committed batches; it kills or stalls the process at the chosen one."""

    def __init__(self, journal: Any, when: str, at: int) -> None:
        self.journal, self.when, self.at, self.count = journal, when, at, 0

    @hookimpl
    def segport_after_batch(self, run: Run, export: Export, result: BatchResult) -> None:
        self.count += 1
        self.journal({"event": "commit", "n": self.count})
        if self.count != self.at:
            return
        if self.when == "commit":
            os.kill(os.getpid(), signal.SIGKILL)
        elif self.when == "stall":
            self.journal({"event": "stall", "n": self.count})
            threading.Event().wait()  # commits wait for ever, as behind a locked database


def load_class(path: str) -> type[Destination]:
    """``module:qualname`` -> the class."""
    module, _, qualname = path.partition(":")
    found: Any = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    if not (isinstance(found, type) and issubclass(found, Destination)):
        raise SystemExit(f"{path} is not a segport.Destination subclass")
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """Run the export as the module docstring says, dying or stalling at ``POINT``; return 0 if it finishes."""
    home, export, destination, journal_path, point, batch_size = argv or sys.argv[1:]
    when, _, number = point.partition(":")
    at = int(number)
    journal = journal_writer(journal_path)

    def listen(event: str, n: int, keys: list[str]) -> None:
        journal({"event": event, "n": n, "keys": keys})
        if event == "answer" and when == "answer" and n == at:
            os.kill(os.getpid(), signal.SIGKILL)

    watch = WriteWatch(listen)
    plugin = watched(load_class(destination), lambda: watch, int(batch_size) or None)
    pm = make_manager(autoload=False, plugins=(_Commits(journal, when, at),))
    with Workspace.open(home, USER, registry=Registry.from_plugins([plugin]), pm=pm, retry=KIT_RETRY) as ws:
        ws.run_export(export)
    journal({"event": "finished"})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
