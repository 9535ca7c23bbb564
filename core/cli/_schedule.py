"""``segport schedule``, ``refresh`` and the foreground ``scheduler``."""

from __future__ import annotations

import signal
import threading
from datetime import datetime, timezone
from types import FrameType
from typing import Callable

import click

from ..errors import RunError
from ..scheduling import Scheduler
from ._common import Finite, State, emit_json, emit_table, json_option, pass_state, readable


@click.group()
def schedule() -> None:
    """Set and show the system refresh schedule (cron)."""


@schedule.command("set")
@click.argument("cron")
@json_option
@pass_state
def schedule_set(state: State, cron: str, as_json: bool) -> None:
    """Set the refresh schedule, e.g. '0 3 * * *' (admins only)."""
    value = state.workspace().set_schedule(cron)
    if as_json:
        emit_json({"refresh": value})
        return
    click.echo(f"refresh schedule set to {value!r} (UTC); run 'segport scheduler' or call 'segport refresh' from cron")


@schedule.command("show")
@json_option
@pass_state
def schedule_show(state: State, as_json: bool) -> None:
    """Show the refresh schedule and the exports' own schedules, failing ones marked."""
    ws = state.workspace()
    refresh_cron, jobs, failing = ws.get_schedule(), ws.schedules(), ws.schedule_failures()
    if as_json:
        emit_json({"refresh": refresh_cron, "jobs": jobs, "failing": failing})
    else:
        click.echo(f"refresh: {refresh_cron or '(not set)'}")
        for job, cron in jobs.items():
            mark = failing.get(job)
            click.echo(f"{job}: {cron}" + (f"  FAILING since {mark['at']}: {mark['error']}" if mark else ""))


@click.command()
@json_option
@pass_state
def refresh(state: State, as_json: bool) -> None:
    """Run every enabled export once (what a cron job or systemd timer calls)."""
    results = state.workspace().refresh()
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
@pass_state
def scheduler(state: State, tick: float) -> None:
    """Fire the refresh schedule and export schedules until SIGINT/SIGTERM.

    A schedule that fails is logged with the time, marked (see 'segport schedule show') and skipped:
    the others go on.
    """
    ws = state.workspace()
    ws.require("refresh")
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        click.echo(f"received signal {signum}: stopping after the current run", err=True)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    def fire(job: str) -> None:
        results = ws.fire(job)
        for result in results:
            click.echo(f"{job}: {result.export} {result.status}" + (f" ({result.error})" if result.error else ""))
        failed = [r.export for r in results if r.status == "failed"]
        if failed:  # reported and marked by on_error
            shown = ", ".join(failed)
            raise RunError(f"{len(failed)} of {len(results)} runs failed: {shown} (see 'segport runs list')")

    def on_error(job: str, exc: BaseException) -> None:
        error = " ".join(str(exc).split()) or type(exc).__name__
        click.echo(f"{_now()} error: {job}: {error} (the other schedules go on)", err=True)
        if job != "jobs":
            _quietly(lambda: ws.mark_schedule(job, error))

    def on_success(job: str) -> None:
        _quietly(lambda: ws.mark_schedule(job, None))

    click.echo(f"scheduler started; jobs: {readable(ws.schedules()) if ws.schedules() else 'none yet'}")
    Scheduler(ws.schedules, fire, on_error, on_success=on_success, stop=stop).run(tick)
    click.echo("scheduler stopped")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _quietly(action: Callable[[], None]) -> None:
    """Run ``action``; if it fails (e.g. the database is unreachable), log one line and go on."""
    try:
        action()
    except Exception as exc:
        click.echo(f"{_now()} error: cannot record the schedule's state: {' '.join(str(exc).split())}", err=True)
