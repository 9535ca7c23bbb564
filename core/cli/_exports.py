"""``segport exports`` and ``segport runs``."""

from __future__ import annotations

from typing import Any

import click

from ..errors import ExitStatus, InputError, NotFound, RunError, SegportError
from ..models import Run, RunStatus
from ..pipeline.preview import DEFAULT_SHOWN, Preview
from ..scheduling import in_zone, zone
from ..services.changes import describe
from ..workspace import Workspace
from ._common import (
    SQL_INT_MAX,
    Count,
    State,
    emit_fields,
    emit_json,
    emit_table,
    json_option,
    parse_pairs,
    pass_state,
)
from ._confirm import confirm, yes_option
from ._drift import print_report
from ._drift import register as register_drift
from ._dryrun import echo_plan, plan_document
from ._progress import watch
from ._schedule import TIMEZONE
from ._signals import Terminated, guard_runs


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
@click.option("--connection", required=True, help="Connection to send to (see 'segport connections list').")
@click.option("--segment", "segments", multiple=True, required=True, help="Segment to export (repeatable).")
@click.option("--email", "email_field", required=True, help="Profile attribute holding the email.")
@MAP
@OPTION
@click.option(
    "--schedule",
    default=None,
    help="The export's own schedule: five cron fields, or @hourly, @daily, @weekly, @monthly.",
)
@TIMEZONE
@click.option("--force", is_flag=True, help="Save even if a segment's marker collides with another export's.")
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
    timezone_name: str | None,
    force: bool,
    as_json: bool,
) -> None:
    """Save an export (it does not run until 'exports run', a refresh or its schedule).

    Refused when a segment's marker (its tag, or its option of the list's field) equals another
    segment's on the same audience/list, case-insensitively, unless --force.
    """
    export = state.workspace().add_export(
        name,
        connection=connection,
        segments=list(segments),
        email_field=email_field,
        mapping=parse_pairs(maps, "--map"),
        options=parse_pairs(options, "--option", as_json=True),
        schedule=_zoned(schedule, timezone_name),
        force=force,
    )
    emit_json(export.to_dict()) if as_json else click.echo(f"saved export {export.name!r} (not run yet)")


@exports.command("edit")
@click.argument("name")
@click.option("--segment", "segments", multiple=True, help="Replace the segments (repeatable).")
@click.option("--email", "email_field", default=None, help="Profile attribute holding the email.")
@MAP
@click.option(
    "--unmap",
    "unmap",
    multiple=True,
    metavar="DEST",
    help="Stop sending a destination field (repeatable); the platform keeps the values it has.",
)
@click.option(
    "--option",
    "options",
    multiple=True,
    metavar="KEY=VALUE",
    help="Change an export option (value parsed as JSON where it can); KEY=null removes it (back to its default).",
)
@click.option("--schedule", default=None, help="New schedule: five cron fields, or @hourly, @daily, @weekly, @monthly.")
@TIMEZONE
@click.option("--no-schedule", is_flag=True, help="Remove the export's own schedule.")
@click.option(
    "--connection",
    default=None,
    help="Move to another connection of the same platform and account (the audience/list unchanged).",
)
@click.option("--no-check", is_flag=True, help="With --connection: do not compare the two connections' accounts.")
@click.option(
    "--force",
    is_flag=True,
    help="Accept a move that resets the sync state (the next run resends everything), or colliding markers.",
)
@click.option(
    "--verify-every",
    type=Count(0),
    default=None,
    metavar="N",
    help="Every Nth scheduled run verifies and repairs drift first (exports run --repair); 0: never.",
)
@json_option
@pass_state
def exports_edit(
    state: State,
    name: str,
    segments: tuple[str, ...],
    email_field: str | None,
    maps: tuple[str, ...],
    unmap: tuple[str, ...],
    options: tuple[str, ...],
    schedule: str | None,
    timezone_name: str | None,
    no_schedule: bool,
    connection: str | None,
    no_check: bool,
    force: bool,
    verify_every: int | None,
    as_json: bool,
) -> None:
    """Change an export's segments, data matching, options, schedule, connection or verification.

    The sync state is kept whenever it can be: the next run sends only what changed. A field
    removed with --unmap is no longer sent and keeps its values at the platform. Another
    audience/list (an option) resets the sync state; so would a move to another platform or account,
    which needs --force.
    """
    ws = state.workspace()
    if verify_every is not None:
        export = ws.set_verify_every(name, verify_every)
        others = (segments, email_field, maps, unmap, options, schedule, no_schedule, timezone_name, connection)
        if not any(others):  # nothing else to edit
            if as_json:
                emit_json(export.to_dict())
            else:
                click.echo(f"export {export.name!r}: every {verify_every or 'no'} scheduled run verifies first")
            return
    if timezone_name and not schedule and not no_schedule:  # a new zone for the schedule it has
        schedule = ws.get_export(name).schedule
        if not schedule:
            raise InputError(f"export {name!r} has no schedule to put in a time zone: pass --schedule CRON too")
    edited = ws.change_export(
        name,
        segments=list(segments) or None,
        email_field=email_field,
        mapping=parse_pairs(maps, "--map"),
        unmap=list(unmap),
        options=parse_pairs(options, "--option", as_json=True),
        schedule=_zoned(schedule, timezone_name),
        clear_schedule=no_schedule,
        connection=connection,
        check=not no_check,
        force=force,
    )
    if as_json:
        emit_json(edited.to_dict())
        return
    changed = describe(edited.changes) or "nothing changed"
    click.echo(f"updated export {edited.export.name!r}: {changed}; sync state {edited.sync_state}")
    for note in edited.notes:
        click.echo(f"note: {note}")


def _zoned(schedule: str | None, timezone_name: str | None) -> str | None:
    """Return ``schedule`` in the zone ``--timezone`` names (as given without it)."""
    if schedule is None or timezone_name is None:
        return schedule
    zone(timezone_name)  # an unknown name is refused before anything else
    return in_zone(schedule, timezone_name)


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
        data["verify_every"] = data["verify_every"] or "off"  # unset (null in --json): scheduled runs never verify
        emit_fields(data)


def _toggle(enabled: bool) -> Any:
    verb = "enable" if enabled else "disable"

    @exports.command(verb)
    @click.argument("name")
    @json_option
    @pass_state
    def command(state: State, name: str, as_json: bool) -> None:
        export = state.workspace().set_export_enabled(name, enabled)
        emit_json(export) if as_json else click.echo(f"{verb}d export {name!r}")

    command.help = command.__doc__ = f"{verb.capitalize()} an export for refreshes and schedules."
    return command


_toggle(True)
_toggle(False)


@exports.command("remove")
@click.argument("name")
@yes_option
@json_option
@pass_state
def exports_remove(state: State, name: str, yes: bool, as_json: bool) -> None:
    """Remove an export and its sync state (its runs stay in the history; asks first)."""
    question = f"remove export {name!r} and its sync state (an export added again resends every profile)?"
    state.workspace().exports.remove(name=name, confirm=lambda: confirm(question, yes))
    emit_json({"removed": "export", "name": name}) if as_json else click.echo(f"removed export {name!r}")


def print_run(run: Run, as_json: bool, preview: Preview | None = None) -> None:
    if run.status is RunStatus.PLANNED and not run.error:
        emit_json(plan_document(run, preview)) if as_json else echo_plan(run, preview)
        return
    if as_json:
        emit_json(run.to_dict())
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
@click.option(
    "--dry-run",
    is_flag=True,
    help="Run the pre-flight checks (creating nothing) and print the exact plan in the run's words; send nothing. "
    "Fails where the run would, with its error and exit code.",
)
@click.option(
    "--show-records",
    type=Count(1),
    is_flag=False,
    flag_value=DEFAULT_SHOWN,
    default=None,
    metavar="[N]",
    help=f"With --dry-run: list up to N records of each action (default {DEFAULT_SHOWN}; rejects and exits "
    "first, then skips, creates, updates) with their fields, markers and reject reasons, and how many of each "
    "were not shown (--json: a 'records' list and 'records_not_shown').",
)
@click.option("--wait", is_flag=True, help="With SEGPORT_BROKER_URL: wait for the queued run and print its record.")
@click.option(
    "--repair",
    is_flag=True,
    help="Verify first, then send only what drifted at the platform (markers and fields put back; "
    "nobody resubscribed or re-created). Runs in this process.",
)
@json_option
@pass_state
def exports_run(
    state: State,
    name: str,
    full: bool,
    dry_run: bool,
    show_records: int | None,
    wait: bool,
    repair: bool,
    as_json: bool,
) -> None:
    """Run an export now (with SEGPORT_BROKER_URL set: queue it for 'segport worker')."""
    if show_records is not None and not dry_run:
        raise click.UsageError("--show-records lists a dry run's records: add --dry-run")
    ws = state.workspace()
    if repair:
        if full or dry_run or wait:
            raise click.UsageError("--repair cannot be combined with --full, --dry-run or --wait")
        _repair(ws, name, as_json)
        return
    if ws.executor is not None and not dry_run:
        _queue_run(ws, name, full, wait, as_json)
        return
    if not dry_run:
        watch(ws, bar=not as_json)
    guard = guard_runs(ws)
    preview = Preview(limit=show_records or 0) if dry_run else None
    try:  # a failed run's record: in the --json error's "run"
        run = ws.run_export(name, full=full, dry_run=dry_run, preview=preview)
    except Terminated:
        stopped = Terminated(guard.stopped())
        if guard.run is not None and guard.run.status is RunStatus.INTERRUPTED:
            stopped.run = guard.run  # in the --json error's "run"
        raise stopped from None
    print_outcome(run, as_json, preview)


def print_outcome(run: Run, as_json: bool, preview: Preview | None = None) -> None:
    """Print the run; a partial one is a failure (exit 10) whose --json document carries the run record."""
    if run.status is not RunStatus.PARTIAL:
        print_run(run, as_json, preview)
        return
    if not as_json:
        print_run(run, False)
    error = RunError(f"run {run.id}: {run.error}")
    error.run = run
    raise error


def _repair(ws: Workspace, name: str, as_json: bool) -> None:
    """Verify, then run the repairs; print the report (JSON: ``{"verify": report, "run": run record}``).

    A failed repair's record is in the --json error's ``run``, its report in ``verify``.
    """
    watch(ws, bar=not as_json)
    report, run = ws.repair_export(name)
    if not as_json:
        print_report(report)
        print_run(run, False)
    elif run.status is not RunStatus.PARTIAL:
        emit_json({"verify": report.to_dict(), "run": run.to_dict()})
    if run.status is RunStatus.PARTIAL:
        error = RunError(f"run {run.id}: {run.error}")
        error.run = run
        error.details = {"verify": report.to_dict()}
        raise error


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
        error = QueuedRunError(result.error, result.exit_status)
        error.run = run  # in the --json error's "run"
        raise error
    assert run is not None
    print_outcome(run, as_json)


class QueuedRunError(SegportError):
    """A queued run ended in an error: the worker's message, with the exit status it would have had here."""

    def __init__(self, message: str, status: ExitStatus) -> None:
        super().__init__(message)
        self.exit_status = status


register_drift(exports)


@click.group()
def runs() -> None:
    """Read the run history."""


@runs.command("list")
@click.option("--export", "export", default=None, help="Only the runs of this export.")
@click.option("--limit", type=Count(1), default=50, show_default=True, help="Newest runs to show.")
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
    emit_json(run.to_dict()) if as_json else emit_fields(run.to_dict())
