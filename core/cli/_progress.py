"""Progress of a run: a bar on a terminal, a timestamped line every few seconds elsewhere (cron, systemd)."""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from datetime import datetime
from typing import IO, Any, Callable

import click

from ..contract import BatchResult
from ..errors import ConfigError
from ..hookspecs import hookimpl
from ..models import Export, Run
from ..workspace import Workspace

INTERVAL_ENV = "SEGPORT_PROGRESS_INTERVAL"
DEFAULT_INTERVAL = 10.0  # seconds between two progress lines without a terminal


def stamp() -> str:
    """Return the current time as ISO 8601 with its UTC offset, to the second (the local zone)."""
    return datetime.now().astimezone().isoformat(timespec="seconds")


def log(message: str, *, err: bool = True) -> None:
    """Print one line starting with the current time (stderr unless ``err`` is false)."""
    click.echo(f"{stamp()} {message}", err=err)


def interval_from_env() -> float:
    """Return the seconds between progress lines: ``SEGPORT_PROGRESS_INTERVAL`` or 10."""
    text = os.environ.get(INTERVAL_ENV, "").strip()
    if not text:
        return DEFAULT_INTERVAL
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{INTERVAL_ENV}={text!r} is not a number of seconds above 0 (unset it for 10)")
    return value


def watch(ws: Workspace, *, bar: bool) -> None:
    """Show the progress of the runs ``ws`` makes: a bar when ``bar`` and stderr is a terminal, else lines."""
    if bar and sys.stderr.isatty():
        ws.pm.register(Progress(), name="segport.progress")
    elif not sys.stderr.isatty():
        ws.pm.register(ProgressLines(interval_from_env()), name="segport.progress")


def duration(seconds: float) -> str:
    """Return ``seconds`` as ``1h02m``, ``4m05s`` or ``12s``."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class ProgressLines:
    """Progress lines for logs: one every ``interval`` seconds from when a run starts sending.

    A timer prints the lines, so a slow platform whose batches take longer than ``interval`` still
    shows the run is alive. A run shorter than ``interval`` prints none, and so does a run whose
    pre-flight fails: a failure stays one error line, and cron mails only long runs.
    ``done`` counts the records the run has settled (sent, rejected, skipped); ``total`` is the
    run's selection, whose unchanged profiles a delta run only counts at its end. Rate and ETA are
    printed once a batch has completed; before that the ETA is unknown.
    """

    def __init__(
        self,
        interval: float = DEFAULT_INTERVAL,
        *,
        clock: Callable[[], float] = time.monotonic,
        file: IO[str] | None = None,
    ) -> None:
        self.interval = interval
        self.clock = clock
        self.file = file
        self.started = 0.0
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.timer: threading.Thread | None = None
        self.label = ""
        self.total = self.done = self.batches = 0
        self.printed = -1  # ``done`` as of the last periodic line, -1 before the first one

    @hookimpl
    def segport_before_send(self, run: Run, export: Export) -> None:
        """Start the timer once the run's pre-flight passed."""
        self._stop()
        with self.lock:
            self.started = self.clock()
            self.label = f"export {export.name} run {run.id}"
            self.total = (run.plan or {}).get("selected") or 0
            self.done = self.batches = 0
            self.printed = -1
        self.stopped = threading.Event()
        self.timer = threading.Thread(target=self._tick, args=(self.stopped,), name="segport-progress", daemon=True)
        self.timer.start()

    @hookimpl
    def segport_after_batch(self, run: Run, export: Export, result: BatchResult) -> None:
        """Take note of the records the run has settled so far."""
        with self.lock:
            self.done = sum(run.counts.values())
            self.batches += 1

    @hookimpl
    def segport_after_run(self, run: Run, export: Export) -> None:
        """Stop the timer; print the final figures if a periodic line was printed and they changed since."""
        self._stop()
        with self.lock:
            self.done = sum(run.counts.values())
            final = self.printed >= 0 and self.printed != self.done
        if final:
            self._echo(self.line())

    def line(self) -> str:
        """Return the current progress line."""
        with self.lock:
            elapsed = self.clock() - self.started
            done, total = self.done, self.total
            self.printed = done
            measured = self.batches > 0 and elapsed > 0
        of = f"/{total:,} ({min(done / total, 1):.0%})" if total else ""
        if not measured:
            return f"{stamp()} progress: {self.label}: {done:,}{of} records, ETA unknown"
        rate = done / elapsed
        eta = duration((total - done) / rate) if total and rate > 0 and total > done else "-"
        return f"{stamp()} progress: {self.label}: {done:,}{of} records, {rate:,.0f} records/s, ETA {eta}"

    def _tick(self, stopped: threading.Event) -> None:
        while not stopped.wait(self.interval):
            self._echo(self.line())

    def _stop(self) -> None:
        self.stopped.set()
        if self.timer is not None:
            self.timer.join(timeout=5)
            self.timer = None

    def _echo(self, text: str) -> None:
        click.echo(text, file=self.file or sys.stderr)


class Progress:
    """A progress bar with rate and ETA on a terminal, fed by the run hooks."""

    def __init__(self) -> None:
        self.bar: Any = None
        self.started = 0.0
        self.done = 0

    @hookimpl
    def segport_before_run(self, run: Run, export: Export) -> None:
        """Open the bar of a run."""
        total = (run.plan or {}).get("selected") or None
        self.started, self.done = time.monotonic(), 0
        self.bar = click.progressbar(
            length=total,
            label=f"exporting {export.name}",
            file=sys.stderr,
            show_eta=True,
            show_percent=True,
            item_show_func=lambda rate: rate,
        )
        self.bar.__enter__()

    @hookimpl
    def segport_after_batch(self, run: Run, export: Export, result: BatchResult) -> None:
        """Advance the bar by a batch."""
        if self.bar is not None:
            self.done += len(result.outcomes)
            rate = self.done / max(time.monotonic() - self.started, 1e-6)
            self.bar.update(len(result.outcomes), f"{rate:,.0f} profiles/s")

    @hookimpl
    def segport_after_run(self, run: Run, export: Export) -> None:
        """Close the bar."""
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None
