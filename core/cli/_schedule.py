"""``segport schedule``, ``refresh`` and the foreground ``scheduler``."""

from __future__ import annotations

import signal
import threading
from types import FrameType

import click

from ..errors import RunError
from ..scheduling import Scheduler
from ._common import Finite, State, emit_json, emit_table, json_option, pass_state


@click.group()
def schedule() -> None:
    """Set and show the system refresh schedule (cron)."""


@schedule.command("set")
@click.argument("cron")
@pass_state
def schedule_set(state: State, cron: str) -> None:
    """Set the refresh schedule, e.g. '0 3 * * *' (admins only)."""
    value = state.workspace().set_schedule(cron)
    click.echo(f"refresh schedule set to {value!r} (UTC); run 'segport scheduler' or call 'segport refresh' from cron")


@schedule.command("show")
@json_option
@pass_state
def schedule_show(state: State, as_json: bool) -> None:
    """Show the refresh schedule and the exports' own schedules."""
    ws = state.workspace()
    refresh_cron, jobs = ws.get_schedule(), ws.schedules()
    if as_json:
        emit_json({"refresh": refresh_cron, "jobs": jobs})
    else:
        click.echo(f"refresh: {refresh_cron or '(not set)'}")
        for job, cron in jobs.items():
            click.echo(f"{job}: {cron}")


@click.command()
@json_option
@pass_state
def refresh(state: State, as_json: bool) -> None:
    """Run every enabled export once (what a cron job or systemd timer calls)."""
    results = state.workspace().refresh()
    if as_json:
        emit_json(results)
    else:
        emit_table(results, ["export", "status", "counts", "error"], empty="no enabled exports")
    failed = [r.export for r in results if r.status in ("failed", "partial")]
    if failed:
        raise RunError(
            f"{len(failed)} of {len(results)} exports did not succeed: {', '.join(failed)} (see 'segport runs list')"
        )


@click.command()
@click.option("--tick", type=Finite(0.05), default=1.0, hidden=True)
@pass_state
def scheduler(state: State, tick: float) -> None:
    """Fire the refresh schedule and export schedules until SIGINT/SIGTERM."""
    ws = state.workspace()
    ws.require("refresh")
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        click.echo(f"received signal {signum}: stopping after the current run", err=True)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    def fire(job: str) -> None:
        for result in ws.fire(job):
            click.echo(f"{job}: {result.export} {result.status}" + (f" ({result.error})" if result.error else ""))

    def on_error(job: str, exc: BaseException) -> None:
        click.echo(f"error: {job}: {exc}", err=True)

    click.echo(f"scheduler started; jobs: {ws.schedules() or 'none yet'}")
    Scheduler(ws.schedules, fire, on_error, stop=stop).run(tick)
    click.echo("scheduler stopped")
