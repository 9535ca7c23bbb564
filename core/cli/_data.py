"""``segport profiles`` and ``segport segments``."""

from __future__ import annotations

import click

from ._common import State, emit_fields, emit_json, emit_table, json_option, pass_state

FORMAT = click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "jsonl"]),
    default=None,
    help="File format (default: from the extension).",
)


@click.group()
def profiles() -> None:
    """Load and show customer profiles (one row per customer)."""


@profiles.command("load")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--key", default="id", show_default=True, help="Column/field holding the profile key.")
@click.option("--replace", is_flag=True, help="Replace all profiles instead of adding/updating.")
@FORMAT
@json_option
@pass_state
def profiles_load(state: State, file: str, key: str, replace: bool, fmt: str | None, as_json: bool) -> None:
    """Load profiles from a CSV or JSONL file (all rows or none)."""
    result = state.workspace().load_profiles(file, key=key, fmt=fmt, replace=replace)
    if as_json:
        emit_json(result)
    else:
        click.echo(f"loaded {result.loaded:,} profiles from {file} ({result.profiles:,} in the workspace)")


@profiles.command("show")
@click.argument("key")
@json_option
@pass_state
def profiles_show(state: State, key: str, as_json: bool) -> None:
    """Show one profile's attributes."""
    attrs = state.workspace().get_profile(key)
    if as_json:
        emit_json({"key": key, "attributes": attrs})
    else:
        emit_fields(attrs)


@click.group()
def segments() -> None:
    """Manage segments: named sets of profiles, loaded from a file or defined by a filter."""


@segments.command("load")
@click.argument("name")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--key", default="id", show_default=True, help="Key column of a CSV/JSONL file.")
@FORMAT
@json_option
@pass_state
def segments_load(state: State, name: str, file: str, key: str, fmt: str | None, as_json: bool) -> None:
    """Create or replace a segment from a file of profile keys (one a line, or CSV/JSONL)."""
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
@json_option
@pass_state
def segments_remove(state: State, name: str, as_json: bool) -> None:
    """Remove a segment no export uses."""
    state.workspace().remove_segment(name)
    emit_json({"removed": "segment", "name": name}) if as_json else click.echo(f"removed segment {name!r}")
