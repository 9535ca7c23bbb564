"""``segport segments``."""

from __future__ import annotations

import click

from ._common import State, emit_json, emit_table, json_option, pass_state
from ._confirm import confirm, yes_option

FORMAT = click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "jsonl"]),
    default=None,
    help="File format (default: from the extension, under .gz; one key a line for other files and stdin).",
)


@click.group()
def segments() -> None:
    """Manage segments: named sets of profiles, loaded from a file or defined by a filter."""


@segments.command("load")
@click.argument("name")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--key", default="id", show_default=True, help="Key column of a CSV/JSONL file.")
@FORMAT
@json_option
@pass_state
def segments_load(state: State, name: str, file: str, key: str, fmt: str | None, as_json: bool) -> None:
    """Create or replace a segment from a file of profile keys (one a line, or CSV/JSONL; gzip or not; '-': stdin)."""
    result = state.workspace().load_segment(name, file, key=key, fmt=fmt)
    if as_json:
        emit_json(result)
        return
    click.echo(f"segment {name!r} holds {result.members:,} profiles")
    if result.unknown_keys:
        click.echo(
            f"warning: {result.unknown_keys:,} keys match no profile yet (load them with 'segport profiles load')",
            err=True,
        )


@segments.command("define")
@click.argument("name")
@click.option("--where", "where", required=True, help="Filter, e.g. \"country = 'FR' and age >= 18\".")
@json_option
@pass_state
def segments_define(state: State, name: str, where: str, as_json: bool) -> None:
    """Create or update a segment defined by a filter over profile attributes."""
    ws = state.workspace()
    segment = ws.define_segment(name, where)
    emit_json(segment.to_dict()) if as_json else click.echo(f"segment {name!r} defined: {segment.expression}")
    for attribute, near in ws.unknown_attributes(where).items():
        hint = f"did you mean {' or '.join(repr(n) for n in near)}?" if near else "check its spelling"
        click.echo(f"warning: no loaded profile has the attribute {attribute!r}: {hint}", err=True)


@segments.command("list")
@json_option
@pass_state
def segments_list(state: State, as_json: bool) -> None:
    """List segments with their current member counts."""
    rows = state.workspace().list_segments()
    emit_json(rows) if as_json else emit_table(rows, ["name", "kind", "members", "expression"])


@segments.command("remove")
@click.argument("name")
@yes_option
@json_option
@pass_state
def segments_remove(state: State, name: str, yes: bool, as_json: bool) -> None:
    """Remove a segment no export uses (asks first)."""
    question = f"remove segment {name!r}?"
    state.workspace().catalog.remove_segment(name=name, confirm=lambda: confirm(question, yes))
    emit_json({"removed": "segment", "name": name}) if as_json else click.echo(f"removed segment {name!r}")
