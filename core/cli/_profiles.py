"""``segport profiles``: load, show, list, count and remove customer profiles."""

from __future__ import annotations

import json
from collections.abc import Iterator

import click

from ..errors import ConfigError
from ..models import ProfileLoad
from ..readers import read_segment_keys
from ..services.profiles import KeyMismatch
from ..sources import display_name
from ._common import Count, State, emit_fields, emit_json, emit_table, json_option, pass_state
from ._confirm import confirm, yes_option

FORMAT = click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "jsonl"]),
    default=None,
    help="File format (default: from the extension, under .gz; required when FILE is -).",
)
WHERE_HELP = "Only profiles matching this filter, e.g. \"country = 'FR' and age >= 18\"."
_SHOWN_ATTRIBUTES = 6  # attribute columns of 'profiles list' without --columns


@click.group()
def profiles() -> None:
    """Load, list, count and remove customer profiles (one row per customer)."""


@profiles.command("load")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option(
    "--key",
    default=None,
    help="Column/field holding the profile key (default: the workspace's key; 'id' for the first load).",
)
@click.option(
    "--replace",
    is_flag=True,
    help="Replace all profiles: those not in FILE are removed (asks first); with another --key, re-keys them.",
)
@FORMAT
@yes_option
@json_option
@pass_state
def profiles_load(
    state: State, file: str, key: str | None, replace: bool, fmt: str | None, yes: bool, as_json: bool
) -> None:
    """Load profiles from a CSV or JSONL file, gzip or not; '-' reads stdin (all rows or none).

    Profiles are added or updated by key; the key column is the workspace's (recorded at its first
    load), and a load by another one is refused unless --replace re-keys every profile.
    """
    source = display_name(file)

    def ask(load: ProfileLoad) -> None:
        question = f"remove {_count(load.removed, 'profile')} not in {source}?"
        if load.rekeyed_from:
            question = f"re-key the profiles from {load.rekeyed_from!r} to {load.key!r} and {question}"
        confirm(question, yes)

    try:
        result = state.workspace().profiles.load(path=file, key=key, fmt=fmt, replace=replace, confirm=ask)
    except KeyMismatch as exc:
        raise ConfigError(
            f"this workspace's profiles are keyed by {exc.current!r}, not {exc.requested!r}: pass --key {exc.current},"
            f" or --replace to re-key every profile by {exc.requested!r} (profiles not in the file are removed)"
        ) from None
    segments = state.workspace().store.list_segments() if result.rekeyed_from else []
    static = [s.name for s in segments if s.kind == "static"]
    if static:
        click.echo(
            f"warning: re-keyed by {result.key!r} (was {result.rekeyed_from!r}): the static segments"
            f" {', '.join(repr(n) for n in static)} list keys by {result.rekeyed_from!r}; reload them"
            f" ('segport segments load NAME FILE --key {result.key}') before the next export run",
            err=True,
        )
    if as_json:
        emit_json(result)
        return
    counts = f"{result.added:,} added, {result.updated:,} updated, {result.unchanged:,} unchanged"
    if replace:
        counts += f", {result.removed:,} removed"
    click.echo(f"loaded {result.loaded:,} profiles from {source}: {counts} ({result.profiles:,} in the workspace)")


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


@profiles.command("list")
@click.option("--where", default=None, help=WHERE_HELP)
@click.option("--limit", type=Count(1), default=50, show_default=True, help="Most profiles to show.")
@click.option("--offset", type=Count(0), default=0, show_default=True, help="Profiles to skip first (in key order).")
@click.option(
    "--columns",
    default=None,
    help=f"Comma-separated attributes to show (default: the first {_SHOWN_ATTRIBUTES} of the first profile).",
)
@json_option
@pass_state
def profiles_list(
    state: State, where: str | None, limit: int, offset: int, columns: str | None, as_json: bool
) -> None:
    """List profiles in key order, a page at a time (--limit, --offset), optionally filtered."""
    page = state.workspace().profiles.page(where=where, limit=limit, offset=offset)
    if as_json:
        emit_json(page)
        return
    if columns:
        shown = [c.strip() for c in columns.split(",") if c.strip()]
    else:  # the key column is the KEY one
        key_column = state.workspace().profiles.key_column()
        names = list(page.profiles[0][1]) if page.profiles else []
        shown = [name for name in names if name != key_column][:_SHOWN_ATTRIBUTES]
    rows = [{"key": key, **{c: _text(attrs.get(c)) for c in shown}} for key, attrs in page.profiles]
    emit_table(rows, ["key", *shown], empty="(no profile)")
    end = offset + len(page.profiles)
    what = "matching profiles" if where else "profiles"
    if page.profiles:
        more = f"; next page: --offset {end}" if end < page.total else ""
        click.echo(f"{what} {offset + 1:,} to {end:,} of {page.total:,}{more}", err=True)
    else:
        click.echo(f"{page.total:,} {what}", err=True)


def _count(number: int, noun: str) -> str:
    """Return ``1 profile``, ``2 profiles``, ``1,000 profiles``."""
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def _text(value: object) -> str:
    """Return an attribute as a table cell: text as is, other values as JSON would write them."""
    if value is None:
        return ""
    if isinstance(value, (bool, dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


@profiles.command("count")
@click.option("--where", default=None, help=WHERE_HELP)
@json_option
@pass_state
def profiles_count(state: State, where: str | None, as_json: bool) -> None:
    """Count the profiles, or those matching a filter."""
    count = state.workspace().profiles.count(where=where)
    emit_json({"profiles": count, "where": where}) if as_json else click.echo(f"{count:,}")


@profiles.command("remove")
@click.argument("keys", nargs=-1)
@click.option(
    "--keys-file",
    type=click.Path(dir_okay=False, allow_dash=True),
    default=None,
    help="File of keys to remove, one a line ('-': stdin; blank lines and lines starting with # skipped).",
)
@click.option("--where", default=None, help="Remove the profiles matching this filter.")
@yes_option
@json_option
@pass_state
def profiles_remove(
    state: State, keys: tuple[str, ...], keys_file: str | None, where: str | None, yes: bool, as_json: bool
) -> None:
    """Remove profiles by KEY, by a file of keys, or by filter (asks first).

    Removed profiles leave their segments; each export's next run handles their exits as for anyone
    leaving its segments: markers removed (tags, segment field options; or archived where the export
    says so), never unsubscribing or deleting anyone.
    """
    if sum(map(bool, (keys, keys_file, where))) != 1:
        raise click.UsageError("name the profiles to remove: KEY arguments, --keys-file FILE or --where FILTER")
    chosen = list(keys) if keys else list(_keys_of(keys_file)) if keys_file else None

    def ask(count: int) -> None:
        which = f" matching {where!r}" if where else ""
        confirm(f"remove {_count(count, 'profile')}{which} (each export's next run removes their markers)?", yes)

    result = state.workspace().profiles.remove(keys=chosen, where=where, confirm=ask)
    if as_json:
        emit_json(result)
        return
    unknown = f" ({_count(result.not_found, 'key')} matched no profile)" if result.not_found else ""
    click.echo(f"removed {_count(result.removed, 'profile')}{unknown}")


def _keys_of(path: str) -> Iterator[str]:
    """Yield the keys of a file (or stdin, gzip or not), one a line."""
    for _line, key in read_segment_keys(path, fmt="lines"):
        yield key
