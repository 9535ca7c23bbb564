"""``segport exports`` and ``segport runs``."""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from ..contract import BatchResult
from ..errors import ExitStatus, NotFound, RunError, SegportError
from ..hookspecs import hookimpl
from ..models import Export, Run, RunStatus
from ..workspace import Workspace
from ._common import SQL_INT_MAX, Count, State, emit_json, emit_table, json_option, parse_pairs, pass_state


@click.group()
def exports() -> None:
    """Manage exports: segments of profiles sent to a connection's audience/list."""


MAP = click.option(
    "--map",
    "maps",
    multiple=True,
    metavar="DEST=SRC",
    help="Destination field from a profile attribute, e.g. FNAME=first_name.",
)
OPTION = click.option(
    "--option",
    "options",
    multiple=True,
    metavar="KEY=VALUE",
    help="Export option of the destination (value parsed as JSON where it can).",
)


@exports.command("add")
@click.argument("name")
@click.option("--connection", required=True)
@click.option("--segment", "segments", multiple=True, required=True, help="Segment to export (repeatable).")
@click.option("--email", "email_field", required=True, help="Profile attribute holding the email.")
@MAP
@OPTION
@click.option("--schedule", default=None, help="Cron line of the export's own schedule.")
@json_option
@pass_state
def exports_add(
    state: State,
    name: str,
    connection: str,
    segments: tuple[str, ...],
    email_field: str,
    maps: tuple[str, ...],
    options: tuple[str, ...],
    schedule: str | None,
    as_json: bool,
) -> None:
    """Save an export (it does not run until 'exports run', a refresh or its schedule)."""
    export = state.workspace().add_export(
        name,
        connection=connection,
        segments=list(segments),
        email_field=email_field,
        mapping=parse_pairs(maps, "--map"),
        options=parse_pairs(options, "--option", as_json=True),
        schedule=schedule,
    )
    emit_json(export.to_dict()) if as_json else click.echo(f"saved export {export.name!r} (not run yet)")


@exports.command("edit")
@click.argument("name")
@click.option("--segment", "segments", multiple=True, help="Replace the segments (repeatable).")
@click.option("--email", "email_field", default=None)
@MAP
@OPTION
@click.option("--schedule", default=None)
@click.option("--no-schedule", is_flag=True, help="Remove the export's own schedule.")
@json_option
@pass_state
def exports_edit(
    state: State,
    name: str,
    segments: tuple[str, ...],
    email_field: str | None,
    maps: tuple[str, ...],
    options: tuple[str, ...],
    schedule: str | None,
    no_schedule: bool,
    as_json: bool,
) -> None:
    """Change an export's segments, data matching, options or schedule."""
    export = state.workspace().edit_export(
        name,
        segments=list(segments) or None,
        email_field=email_field,
        mapping=parse_pairs(maps, "--map"),
        options=parse_pairs(options, "--option", as_json=True),
        schedule=schedule,
        clear_schedule=no_schedule,
    )
    emit_json(export.to_dict()) if as_json else click.echo(f"updated export {export.name!r}")


@exports.command("list")
@json_option
@pass_state
def exports_list(state: State, as_json: bool) -> None:
    """List exports."""
    rows = [e.to_dict() for e in state.workspace().list_exports()]
    emit_json(rows) if as_json else emit_table(
        rows, ["name", "connection", "segments", "enabled", "detached", "schedule"]
    )


@exports.command("show")
@click.argument("name")
@json_option
@pass_state
def exports_show(state: State, name: str, as_json: bool) -> None:
    """Show an export."""
    data = state.workspace().get_export(name).to_dict()
    if as_json:
        emit_json(data)
    else:
        for key, value in data.items():
            click.echo(f"{key}: {value}")


def _toggle(enabled: bool) -> Any:
    verb = "enable" if enabled else "disable"

    @exports.command(verb)
    @click.argument("name")
    @pass_state
    def command(state: State, name: str) -> None:
        state.workspace().set_export_enabled(name, enabled)
        click.echo(f"{verb}d export {name!r}")

    command.__doc__ = f"{verb.capitalize()} an export for refreshes and schedules."
    return command


_toggle(True)
_toggle(False)


@exports.command("remove")
@click.argument("name")
@pass_state
def exports_remove(state: State, name: str) -> None:
    """Remove an export and its sync state (its runs stay in the history)."""
    state.workspace().remove_export(name)
    click.echo(f"removed export {name!r}")


class Progress:
    """A progress bar with rate and ETA on a terminal, fed by the run hooks."""

    def __init__(self) -> None:
        self.bar: Any = None
        self.started = 0.0
        self.done = 0

    @hookimpl
    def segport_before_run(self, run: Run, export: Export) -> None:
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
        if self.bar is not None:
            self.done += len(result.outcomes)
            rate = self.done / max(time.monotonic() - self.started, 1e-6)
            self.bar.update(len(result.outcomes), f"{rate:,.0f} profiles/s")

    @hookimpl
    def segport_after_run(self, run: Run, export: Export) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


def print_run(run: Run, as_json: bool) -> None:
    if as_json:
        emit_json(run.to_dict())
        return
    if run.status is RunStatus.PLANNED:
        plan = run.plan or {}
        click.echo(f"dry run of {run.export} (run {run.id}): nothing was sent; the plan:")
        for key, value in plan.items():
            label = key.replace("_", " ")
            note = "  (batch calls; pre-flight checks add a few)" if key == "requests" else ""
            if key.startswith("empty_"):  # a mapped field: how many records to send carry it blank
                note = "  (records to send whose mapped attribute is missing or blank: sent empty)"
            click.echo(f"  {label}: {value:,}{note}")
        return
    counts = ", ".join(f"{k} {v:,}" for k, v in run.counts.items() if v) or "nothing to send"
    click.echo(
        f"run {run.id} of {run.export}: {run.status.value} in {run.duration_s or 0:.1f}s — {counts}; "
        f"{run.requests:,} requests, {run.retries:,} retries"
    )
    lost = run.counts.get("rejected", 0) + run.counts.get("failed", 0) + run.counts.get("skipped", 0)
    if lost and run.reject_file:
        click.echo(
            f"{lost:,} records rejected, failed or skipped: reasons in {run.reject_file} "
            f"(segport runs rejects {run.id})"
        )
    elif lost:
        click.echo(
            f"{lost:,} records rejected, failed or skipped, each for a reason an earlier run reported: "
            f"segport runs rejects {run.id}"
        )


@exports.command("run")
@click.argument("name")
@click.option("--full", is_flag=True, help="Resend every selected profile, ignoring what was delivered.")
@click.option("--dry-run", is_flag=True, help="Print the exact plan; send nothing.")
@click.option("--wait", is_flag=True, help="With SEGPORT_BROKER_URL: wait for the queued run and print its record.")
@json_option
@pass_state
def exports_run(state: State, name: str, full: bool, dry_run: bool, wait: bool, as_json: bool) -> None:
    """Run an export now (with SEGPORT_BROKER_URL set: queue it for 'segport worker')."""
    ws = state.workspace()
    if ws.executor is not None and not dry_run:
        _queue_run(ws, name, full, wait, as_json)
        return
    if sys.stderr.isatty() and not as_json and not dry_run:
        ws.pm.register(Progress(), name="segport.progress")
    try:
        run = ws.run_export(name, full=full, dry_run=dry_run)
    except SegportError as exc:
        if exc.run is not None and as_json:
            print_run(exc.run, True)
        raise
    print_run(run, as_json)
    if run.status is RunStatus.PARTIAL:
        raise RunError(f"run {run.id}: {run.error}")


def _queue_run(ws: Workspace, name: str, full: bool, wait: bool, as_json: bool) -> None:
    """Queue the run; with ``wait``, print its record once a worker has run it, as an in-process run."""
    assert ws.executor is not None
    task = ws.queue_export(name, full=full)
    if not wait:
        emit_json({"export": name, "status": "queued", "task": task}) if as_json else click.echo(
            f"queued a run of {name!r}: task {task} (see 'segport runs list')"
        )
        return
    if not as_json:
        click.echo(f"queued a run of {name!r}: task {task}; waiting for a worker", err=True)
    result = ws.executor.wait(task)
    run = ws.get_run(result.run_id) if result.run_id is not None else None
    if result.error is not None:
        if run is not None and as_json:
            print_run(run, True)
        raise QueuedRunError(result.error, result.exit_status)
    assert run is not None
    print_run(run, as_json)
    if run.status is RunStatus.PARTIAL:
        raise RunError(f"run {run.id}: {run.error}")


class QueuedRunError(SegportError):
    """A queued run ended in an error: the worker's message, with the exit status it would have had here."""

    def __init__(self, message: str, status: ExitStatus) -> None:
        super().__init__(message)
        self.exit_status = status


@click.group()
def runs() -> None:
    """Read the run history."""


@runs.command("list")
@click.option("--export", "export", default=None)
@click.option("--limit", type=Count(1), default=50, show_default=True)
@json_option
@pass_state
def runs_list(state: State, export: str | None, limit: int, as_json: bool) -> None:
    """List runs, newest first."""
    rows = [r.to_dict() for r in state.workspace().list_runs(export, limit)]
    emit_json(rows) if as_json else emit_table(
        rows, ["id", "export", "status", "trigger", "user", "started_at", "counts"]
    )


@runs.command("show")
@click.argument("run_id", type=int)
@json_option
@pass_state
def runs_show(state: State, run_id: int, as_json: bool) -> None:
    """Show one run record."""
    ws = state.workspace()
    if not 0 < run_id <= SQL_INT_MAX:  # no run has such an id (and no column holds it)
        ws.require("runs.show")  # a missing or refused user is still the error to report first
        raise NotFound(f"unknown run {run_id} (see 'segport runs list')")
    run = ws.get_run(run_id)
    if as_json:
        emit_json(run.to_dict())
    else:
        for key, value in run.to_dict().items():
            click.echo(f"{key}: {value}")
