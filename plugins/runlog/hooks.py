"""The run log's hook implementations (entry point ``runlog`` of the ``segport.hooks`` group)."""

from __future__ import annotations

import logging
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from segport import Export, Run, hookimpl

from .appender import append_line

ENV = "SEGPORT_RUN_LOG"
logger = logging.getLogger("segport_runlog")
_warned: set[int] = set()  # ids of runs whose run.started line failed: warn once per run


def log_path() -> Path | None:
    """Return the run log file ``SEGPORT_RUN_LOG`` names (read at each call), or None when it is unset or empty."""
    value = os.environ.get(ENV, "").strip()
    return Path(value).expanduser() if value else None


def entry(event: str, run: Run, export: Export) -> dict[str, Any]:
    """One run-log line: the event, the time, the export (no option, mapping or secret) and the run record.

    :param event: ``run.started`` or ``run.finished``.
    :param run: the run record.
    :param export: the export run.
    """
    return {
        "event": event,
        "at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        "export": {"name": export.name, "connection": export.connection, "segments": list(export.segments)},
        "run": run.to_dict(),
    }


@hookimpl
def segport_before_run(run: Run, export: Export) -> None:
    """Log ``run.started``.

    :param run: the run record (status ``running``, or ``planned`` for a dry run).
    :param export: the export being run.
    """
    if not _write("run.started", run, export, warn=True):
        _warned.add(run.id)


@hookimpl
def segport_after_run(run: Run, export: Export) -> None:
    """Log ``run.finished``, whatever the run's status.

    :param run: the finished run record.
    :param export: the export that was run.
    """
    warned = run.id in _warned
    _warned.discard(run.id)
    _write("run.finished", run, export, warn=not warned)


def _write(event: str, run: Run, export: Export, *, warn: bool) -> bool:
    """Append one line; on failure log one warning (if ``warn``) and return False. Never raises OSError."""
    path = log_path()
    if path is None:
        return True
    try:
        append_line(path, entry(event, run, export))
    except OSError as exc:
        if warn:
            logger.warning(
                "run log %s not written (%s): make it writable or point %s at another file; "
                "the run itself is not affected",
                path,
                exc.strerror or type(exc).__name__,
                ENV,
            )
        return False
    return True
