"""``segport schedule``, ``refresh`` and the foreground ``scheduler``."""

from __future__ import annotations

import signal
import threading
from datetime import datetime, timedelta, timezone
from types import FrameType
from typing import Any, Callable

import click

from ..errors import RunError
from ..scheduling import Scheduler
from ._common import Count, Finite, State, emit_json, emit_table, json_option, pass_state
from ._progress import log, watch
from ._signals import Terminated, guard_runs

TIMEZONE = click.option(
    "--timezone",
    "timezone_name",
    default=None,
    metavar="ZONE",
    help="IANA time zone of the cron line's wall times, e.g. Europe/Paris (default: UTC; DST handled).",
)


@click.group()
def schedule() -> None:
    """Set and show the system refresh schedule (cron)."""


@schedule.command("set")
@click.argument("cron")
@TIMEZONE
@json_option
@pass_state
def schedule_set(state: State, cron: str, timezone_name: str | None, as_json: bool) -> None:
    """Set the refresh schedule: five cron fields ('0 3 * * *') or @hourly, @daily, @weekly, @monthly (admins only)."""
    value = state.workspace().set_schedule(cron, timezone=timezone_name)
    if as_json:
        emit_json({"refresh": value})
        return
    click.echo(
        f"refresh schedule set to {value!r}{'' if timezone_name or 'CRON_TZ=' in (value or '') else ' (UTC)'}; "
        "run 'segport scheduler' or call 'segport refresh' from cron"
    )


@schedule.command("show")
@click.option("--count", type=Count(1, 100), default=3, show_default=True, help="Next run times to list per schedule.")
@json_option
@pass_state
def schedule_show(state: State, count: int, as_json: bool) -> None:
    """Show the refresh schedule and the exports' own schedules with their next runs, failing ones marked."""
    ws = state.workspace()
    rows = ws.schedule_overview(count)
    if as_json:
        emit_json(
            {
                "refresh": ws.get_schedule(),
                "jobs": ws.schedules(),
                "failing": ws.schedule_failures(),
                "schedules": rows,
            }
        )
        return
    if not any(row["job"] == "refresh" for row in rows):
        click.echo("refresh: (not set)")
    for row in rows:
        click.echo(_describe(row))


def _describe(row: dict[str, Any]) -> str:
    """Return one schedule's line: job, cron line and zone, next runs or why it does not fire, failing mark."""
    text = f"{row['job']}: {row['cron']} ({row['timezone']})"
    if not row["active"]:
        text += "  not fired: the export is disabled or detached"
    elif row["next_runs"]:
        text += "  next: " + ", ".join(row["next_runs"])
    else:
        text += "  next: none (the line has no next time)"
    mark = row["failing"]
    return text + (f"  FAILING since {mark['at']}: {mark['error']}" if mark else "")


@click.command()
@json_option
@pass_state
def refresh(state: State, as_json: bool) -> None:
    """Run every enabled export once (what a cron job or systemd timer calls)."""
    ws = state.workspace()
    watch(ws, bar=not as_json)
    guard = guard_runs(ws)
    try:
        results = ws.refresh()
    except Terminated:
        raise Terminated(guard.stopped()) from None
    failed = [r.export for r in results if r.status in ("failed", "partial")]
    if as_json and not failed:
        emit_json(results)
    elif not as_json:
        emit_table(results, ["export", "status", "counts", "error"], empty="no enabled exports")
    if failed:
        error = RunError(
            f"{len(failed)} of {len(results)} exports did not succeed: {', '.join(failed)} (see 'segport runs list')"
        )
        error.details = {"results": results}  # the --json error document holds every export's result
        raise error


@click.command()
@click.option("--tick", type=Finite(0.05), default=1.0, hidden=True)
# The first tick also fires what was due in the last SECONDS: tests fire a schedule at once, not at the next minute.
@click.option("--catch-up", "catch_up", type=Finite(0), default=0.0, hidden=True)
@pass_state
def scheduler(state: State, tick: float, catch_up: float) -> None:
    """Fire the refresh schedule and export schedules until SIGINT/SIGTERM.

    Every line starts with the time (ISO 8601, with its UTC offset); runs print a progress line about
    every 10 s. SIGTERM stops a run in progress at once (recorded as interrupted; the next run resumes
    it) and exits 143; SIGINT (Ctrl-C) lets the current run finish, a second one stops it too. A
    schedule that fails is logged, marked (see 'segport schedule show') and skipped: the others go on.
    """
    ws = state.workspace()
    ws.require("refresh")
    watch(ws, bar=False)
    guard = guard_runs(ws)
    stop, running = threading.Event(), threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if running.is_set() and signum == signal.SIGTERM:
            stop.set()
            if not guard.requested:
                log("received SIGTERM: stopping the current run after its batch in flight")
                guard.stop()  # raises here unless a run is sending: then after its current batch
            return
        if running.is_set() and stop.is_set():  # a second Ctrl-C: stop the run too
            signal.signal(signum, signal.SIG_IGN)
            raise KeyboardInterrupt()
        after = " after the current run" if running.is_set() else ""
        log(f"received {signal.Signals(signum).name}: stopping{after}")
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    def fire(job: str) -> None:
        log(f"{job}: starting", err=False)
        running.set()
        try:
            results = ws.fire(job)
        finally:
            running.clear()
        for result in results:
            log(f"{job}: {result.export} {result.status}" + (f" ({result.error})" if result.error else ""), err=False)
        failed = [r.export for r in results if r.status == "failed"]
        if failed:  # reported and marked by on_error
            shown = ", ".join(failed)
            raise RunError(f"{len(failed)} of {len(results)} runs failed: {shown} (see 'segport runs list')")

    def on_error(job: str, exc: BaseException) -> None:
        error = " ".join(str(exc).split()) or type(exc).__name__
        log(f"error: {job}: {error} (the other schedules go on)")
        if job != "jobs":
            _quietly(lambda: ws.mark_schedule(job, error))

    def on_success(job: str) -> None:
        _quietly(lambda: ws.mark_schedule(job, None))

    log(f"scheduler started; jobs: {_jobs(ws.schedules())}", err=False)
    try:
        since = datetime.now(timezone.utc) - timedelta(seconds=catch_up) if catch_up else None
        Scheduler(ws.schedules, fire, on_error, on_success=on_success, stop=stop).run(tick, since=since)
    except Terminated:
        raise Terminated(guard.stopped()) from None
    log("scheduler stopped", err=False)


def _jobs(jobs: dict[str, str]) -> str:
    return ", ".join(f"{job} ({cron})" for job, cron in jobs.items()) or "none yet"


def _quietly(action: Callable[[], None]) -> None:
    """Run ``action``; if it fails (e.g. the database is unreachable), log one line and go on."""
    try:
        action()
    except Exception as exc:
        log(f"error: cannot record the schedule's state: {' '.join(str(exc).split())}")
