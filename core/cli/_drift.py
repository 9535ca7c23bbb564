"""``segport exports verify`` and the report ``exports run --repair`` prints before its run."""

from __future__ import annotations

import click

from ..errors import ExitStatus
from ..pipeline.verify import DriftReport, PersonDrift, examples
from ._common import State, emit_json, json_option, pass_state


def register(group: click.Group) -> None:
    """Add ``verify`` to the ``exports`` group."""
    group.add_command(exports_verify)


@click.command("verify")
@click.argument("name")
@json_option
@pass_state
def exports_verify(state: State, name: str, as_json: bool) -> None:
    """Compare what the export delivered with the platform now; send nothing.

    Exit 0 when the platform holds what was delivered, 16 when something new differs (like diff).
    A status change or absence already reported (by an earlier verify or a run) is listed as known
    and does not count: a monitoring check goes green once it has seen it.
    """
    report = state.workspace().verify_export(name)
    emit_json(report.to_dict()) if as_json else print_report(report)
    if report.found:
        click.get_current_context().exit(int(ExitStatus.DRIFT_FOUND))


def print_report(report: DriftReport, *, err: bool = False) -> None:
    """Print a drift report for humans (on stderr with ``err``, before a repair run's record)."""
    name = report.export
    differ = len(report.new)
    head = "in sync" if not differ else f"{differ:,} of {report.checked:,} delivered people differ at the platform"
    if not report.checked:
        head = "nothing delivered yet: nobody to compare (pre-flight checks passed)"
    if report.known:
        head += f", {report.known:,} known status changes (reported before; not counted)"
    click.echo(
        f"verify {name}: {head} ({report.checked:,} checked, {report.requests:,} requests, {report.retries:,} retries)",
        err=err,
    )
    new_status = [p for p in report.status_changes if not p.known]
    new_missing = [p for p in report.missing if not p.known]
    known = [p for p in (*report.status_changes, *report.missing) if p.known]
    sections = (
        (report.drifted, f"markers or fields changed (segport exports run {name} --repair puts them back)"),
        (new_status, "no longer subscribed (reported only: segport never resubscribes anyone)"),
        (new_missing, "missing at the platform (reported only: segport never re-creates anyone)"),
        (known, "known: reported before and recorded in the sync ledger (not counted; never resubscribed)"),
    )
    for people, title in sections:
        if people:
            click.echo(f"  {title}: {len(people):,}", err=err)
            for person in examples(people):
                click.echo(f"    {describe(person)}", err=err)
            if len(people) > len(examples(people)):
                click.echo(f"    ... and {len(people) - len(examples(people)):,} more (--json lists all)", err=err)
    if report.pending:
        click.echo(
            f"  {report.pending:,} profiles changed since their last delivery: the next run sends them "
            "(their fields were not compared)",
            err=err,
        )


def describe(person: PersonDrift) -> str:
    """One line for one person's drift."""
    parts: list[str] = []
    if person.missing:
        parts.append("not at the platform" + (" (known)" if person.known else ""))
    if person.status is not None:
        parts.append(f"now {person.status}" + (" (known)" if person.known else ""))
    if person.markers_missing:
        parts.append("marker missing: " + ", ".join(sorted(person.markers_missing)))
    if person.markers_extra:
        parts.append("extra marker: " + ", ".join(sorted(person.markers_extra)))
    for field, (delivered, found) in person.fields.items():
        parts.append(f"{field} {_shown(delivered)} delivered, {_shown(found)} at the platform")
    return f"{person.email} ({person.key}): " + "; ".join(parts)


def _shown(value: object) -> str:
    return "(empty)" if value is None or value == "" else f'"{value}"'
