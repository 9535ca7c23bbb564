"""The run history: a run's rejects, pruning old runs, and the retention setting that prunes by itself.

A prune deletes runs (never a running one) with their outcomes, their reject lines and their reject
files (``rejects/run-ID.jsonl`` in the workspace folder), and nothing else: sync state, the sync
ledger and the exports, which delta runs stand on, are never touched. The retention setting
(``segport runs retention 90d``) prunes the same way after every run of the workspace (manual,
refresh, scheduled or a worker's), acting for the workspace.
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

from ..errors import InputError, WorkspaceError
from ..models import Run
from ..private import reject_path
from ..store.interface import RejectRow
from .context import Context
from .visibility import check_run

log = logging.getLogger(__name__)

RETENTION_SETTING = "runs_retention"
MIN_RETENTION = timedelta(days=1)  # a retention prunes after every run: never the run just ended
_UNITS = {"s": 1, "min": 60, "h": 3600, "d": 86400, "w": 604800}
_AGE = re.compile(r"^\s*(\d{1,7})\s*(s|min|h|d|w)\s*$")


def parse_age(text: str) -> timedelta:
    """Return the age ``text`` says: a whole number and a unit, s, min, h, d or w (``90d``, ``12h``, ``2w``)."""
    match = _AGE.match(text or "")
    if match is None:
        raise InputError(
            f"invalid age {text!r}: give a whole number and a unit, s, min, h, d or w (e.g. 90d, 12h, 2w)",
            param="older_than",
        )
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def age_text(text: str) -> str:
    """Return the age ``text`` says, written the way segport stores and prints it (``90d``)."""
    match = _AGE.match(text)
    assert match is not None
    return f"{int(match.group(1))}{match.group(2)}"


@dataclass(frozen=True)
class Rejects:
    """A run's rejects: each line (key, email, status, reason) and which run's reject file holds it."""

    run: Run
    total: int
    rows: list[RejectRow]
    file_exists: bool

    def to_dict(self) -> dict[str, Any]:
        """Return the rejects as JSON-ready data."""
        return {
            "run": self.run.id,
            "export": self.run.export,
            "status": self.run.status.value,
            "reject_file": self.run.reject_file,
            "reject_file_exists": self.file_exists,
            "total": self.total,
            "shown": len(self.rows),
            "rejects": [
                {
                    "key": r.key,
                    "email": r.email,
                    "status": r.status,
                    "reason": r.reason,
                    "reported_in": r.reported_in,
                    "reported_in_kept": r.reporter_kept,
                }
                for r in self.rows
            ],
        }


@dataclass(frozen=True)
class PruneReport:
    """What a prune removed (or, with ``dry_run``, would remove)."""

    older_than: str
    before: str  # runs started before this time (ISO 8601, UTC)
    dry_run: bool
    runs: int
    outcomes: int
    files: int
    bytes: int
    run_ids: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready data."""
        return asdict(self)


class History:
    """Reading a run's rejects; pruning the history by age, on demand or by the retention setting."""

    def __init__(self, context: Context, clock: Callable[[], datetime] | None = None) -> None:
        self.context = context
        self.clock = clock or (lambda: datetime.now(timezone.utc))

    def rejects(self, *, run_id: int, limit: int | None = None) -> Rejects:
        """Return the run's rejects (the first ``limit``, in profile key order), read from the workspace database.

        The database holds every reject of the run, those whose line an earlier run's reject file
        holds too (one line per person per reason); the reject file only the lines this run wrote.
        """
        ctx = self.context
        user = ctx.authorize("runs.rejects")
        run = absolute_reject_file(ctx.home, check_run(ctx, user, ctx.store.get_run(run_id)))
        total, rows = ctx.store.run_rejects(run_id, limit)
        exists = bool(run.reject_file) and Path(run.reject_file or "").is_file()
        return Rejects(run=run, total=total, rows=rows, file_exists=exists)

    def prune(self, *, older_than: str, dry_run: bool = False) -> PruneReport:
        """Delete the runs started more than ``older_than`` ago (``90d``) with their outcomes and reject files."""
        user = self.context.authorize("runs.prune")
        report = self._prune(parse_age(older_than), age_text(older_than), dry_run)
        if not dry_run:
            self._audit(user.name, report, retention=False)
        return report

    def get_retention(self) -> str | None:
        """Return the retention setting (``90d``; None: runs are kept until pruned)."""
        self.context.authorize("runs.list")
        return self.context.store.get_setting(RETENTION_SETTING)

    def set_retention(self, age: str | None) -> str | None:
        """Set (None: clear) how old runs may get: every run of the workspace prunes older ones when it ends."""
        ctx = self.context
        user = ctx.authorize("runs.retention")
        value = None
        if age is not None:
            if parse_age(age) < MIN_RETENTION:
                raise InputError(
                    f"a retention of {age_text(age)} would prune runs as they end: keep runs at least 1d "
                    "(prune once with 'segport runs prune --older-than AGE')",
                    param="age",
                )
            value = age_text(age)
        with ctx.store.transaction():
            old = ctx.store.get_setting(RETENTION_SETTING)
            ctx.store.set_setting(RETENTION_SETTING, value)
            ctx.store.audit(user.name, "runs.retention", "runs", {"old": old, "new": value})
        return value

    def apply_retention(self) -> PruneReport | None:
        """Prune by the retention setting, if one is set (after every run); a failure is logged, never raised."""
        store = self.context.store
        try:
            age = store.get_setting(RETENTION_SETTING)
            if not age:
                return None
            report = self._prune(max(parse_age(age), MIN_RETENTION), age, dry_run=False)
            if report.runs:
                self._audit(self.context.user_name or "segport", report, retention=True)
            return report
        except Exception as exc:  # housekeeping: the run's own result stands whatever happens here
            log.warning("the retention setting could not prune old runs (%s): run 'segport runs prune'", exc)
            return None

    def _prune(self, age: timedelta, text: str, dry_run: bool) -> PruneReport:
        ctx = self.context
        before = (self.clock() - age).astimezone(timezone.utc).isoformat(timespec="seconds")
        ctx.store.reap_stale_runs()  # a run whose process died is interrupted, not running
        if dry_run:
            pruned = ctx.store.prune_runs(before, dry_run=True)
        else:
            with ctx.store.transaction():
                pruned = ctx.store.prune_runs(before)
        files = [reject_path(ctx.home, run_id) for run_id in pruned.run_ids]
        found = [(path, path.stat().st_size) for path in files if path.is_file()]
        if not dry_run:
            for path, _ in found:
                _remove(path)
        return PruneReport(
            older_than=text,
            before=before,
            dry_run=dry_run,
            runs=len(pruned.run_ids),
            outcomes=pruned.outcomes,
            files=len(found),
            bytes=sum(size for _, size in found),
            run_ids=pruned.run_ids,
        )

    def _audit(self, user: str, report: PruneReport, *, retention: bool) -> None:
        detail = {k: v for k, v in report.to_dict().items() if k not in ("run_ids", "dry_run")}
        with self.context.store.transaction():
            self.context.store.audit(user, "runs.prune", "runs", {**detail, "retention": retention})


def absolute_reject_file(home: Path, run: Run) -> Run:
    """Return ``run`` with its reject file as an absolute path.

    Runs recorded before reject paths were absolute hold one relative to the folder the run was
    started from; the file is ``rejects/run-ID.jsonl`` of the workspace folder either way.
    """
    if run.reject_file and not Path(run.reject_file).is_absolute():
        run.reject_file = str(reject_path(home, run.id))
    return run


def _remove(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        raise WorkspaceError(
            f"the runs were pruned but the reject file {path} could not be removed ({exc.strerror or exc}): "
            f"check the permissions of {path.parent} and remove it by hand"
        ) from None

