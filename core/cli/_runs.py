"""``segport runs rejects``, ``runs prune`` and ``runs retention``: reading and keeping the run history."""

from __future__ import annotations

import dataclasses

import click

from ..errors import NotFound
from ..models import RunStatus
from ..services.history import PruneReport, Rejects
from ._common import SQL_INT_MAX, Count, State, counted, emit_json, emit_table, json_option, pass_state
from ._confirm import confirm, yes_option
from ._exports import runs

AGE_HELP = "a whole number and a unit: s, min, h, d or w (e.g. 90d, 12h, 2w)"


@runs.command("rejects")
@click.argument("run_id", type=int)
@click.option(
    "--limit", type=Count(1), default=None, metavar="N", help="Show at most N rejects (default: all), by profile key."
)
@json_option
@pass_state
def runs_rejects(state: State, run_id: int, limit: int | None, as_json: bool) -> None:
    """Print a run's rejects: key, email, status and reason of each.

    Every record the run rejected, that failed after every retry, or was skipped. A person refused
    again for a reason an earlier run already reported is listed too, marked with the run whose
    reject file holds the line (one line per person per reason).
    """
    ws = state.workspace()
    if not 0 < run_id <= SQL_INT_MAX:  # no run has such an id (and no column holds it)
        ws.require("runs.rejects")
        raise NotFound(f"unknown run {run_id}: never recorded, or pruned (see 'segport runs list')")
    rejects = ws.run_rejects(run_id, limit)
    if as_json:
        emit_json(rejects.to_dict())
        return
    _print_rejects(rejects)


def _print_rejects(rejects: Rejects) -> None:
    run = rejects.run
    if run.status is RunStatus.PLANNED:
        click.echo(f"run {run.id} of {run.export} is a dry run: nothing was sent, so it has no rejects")
        return
    if not rejects.total:
        click.echo(f"run {run.id} of {run.export} has no rejects: every record it sent went through")
        return
    repeats = sum(row.reported_in != run.id for row in rejects.rows)
    shown = f", {len(rejects.rows):,} shown (--limit)" if len(rejects.rows) < rejects.total else ""
    click.echo(f"run {run.id} of {run.export}: {rejects.total:,} rejected, failed or skipped{shown}")
    if run.reject_file:
        where = "" if rejects.file_exists else " (the file is gone: reasons from the workspace database)"
        click.echo(f"reject file: {run.reject_file}{where}")
    rows = [
        {
            "key": row.key,
            "email": row.email,
            "status": row.status,
            "reason": row.reason,
            "reported": "this run" if row.reported_in == run.id else _earlier(row.reported_in, row.reporter_kept),
        }
        for row in rejects.rows
    ]
    emit_table(rows, ["key", "email", "status", "reported", "reason"])
    if repeats:
        click.echo(
            f"{repeats:,} of these were already reported for the same reason by an earlier run: "
            "counted in this run, not written to its reject file again"
        )


def _earlier(run_id: int, kept: bool) -> str:
    return f"already in run {run_id}" if kept else f"already in run {run_id} (pruned)"


@runs.command("prune")
@click.option(
    "--older-than", "older_than", required=True, metavar="AGE", help=f"Remove runs started longer ago: {AGE_HELP}."
)
@click.option("--dry-run", is_flag=True, help="Show what would be removed; remove nothing.")
@yes_option
@json_option
@pass_state
def runs_prune(state: State, older_than: str, dry_run: bool, yes: bool, as_json: bool) -> None:
    """Remove old runs with their outcomes and reject files.

    Never a running run, and nothing a run needs: sync state, the sync ledger, exports, segments and
    profiles stay. Asks first on a terminal; --yes elsewhere.
    """
    ws = state.workspace()
    if not dry_run:
        planned = ws.prune_runs(older_than, dry_run=True)
        if not planned.runs:  # nothing to remove: nothing to confirm
            _print_prune(dataclasses.replace(planned, dry_run=False), as_json)
            return
        confirm(
            f"remove {counted(planned.runs, 'run')} started before {planned.before} with their "
            f"{counted(planned.outcomes, 'outcome')} and {counted(planned.files, 'reject file')} "
            f"({counted(planned.bytes, 'byte')})?",
            yes,
        )
    _print_prune(ws.prune_runs(older_than, dry_run=dry_run), as_json)


def _print_prune(report: PruneReport, as_json: bool) -> None:
    if as_json:
        emit_json(report.to_dict())
        return
    verb = "would remove" if report.dry_run else "removed"
    click.echo(
        f"{verb} {counted(report.runs, 'run')} started before {report.before} (older than {report.older_than}), "
        f"{counted(report.outcomes, 'outcome')}, {counted(report.files, 'reject file')} "
        f"({counted(report.bytes, 'byte')})"
    )
    if report.run_ids:
        first, last = report.run_ids[0], report.run_ids[-1]
        click.echo(f"runs: {first}" if first == last else f"runs: {len(report.run_ids):,} from {first} to {last}")


@runs.command("retention")
@click.argument("age", required=False, metavar="[AGE]")
@click.option("--off", is_flag=True, help="Remove the retention setting: keep runs until 'runs prune'.")
@json_option
@pass_state
def runs_retention(state: State, age: str | None, off: bool, as_json: bool) -> None:
    """Show or set how long runs are kept: every run that ends prunes runs older than AGE.

    AGE is a whole number and a unit (s, min, h, d or w), at least 1d; the runs older than it are
    removed with their outcomes and reject files when any run of the workspace ends (manual,
    refresh, scheduled or a worker's). Without AGE, print the setting.
    """
    if age is not None and off:
        raise click.UsageError("give AGE or --off, not both")
    ws = state.workspace()
    value = ws.set_runs_retention(None if off else age) if off or age is not None else ws.runs_retention()
    if as_json:
        emit_json({"retention": value})
    elif value is None:
        click.echo("no retention: runs are kept until 'segport runs prune --older-than AGE'")
    else:
        click.echo(f"retention {value}: runs older than {value} are pruned whenever a run ends")
