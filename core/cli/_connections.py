"""``segport connections``: add, list, show, test, list audiences, edit, remove and set the profile cap."""

from __future__ import annotations

import sys
import webbrowser
from pathlib import Path
from typing import Any

import click

from ..config import parse_json_object, redact, secret_fields
from ..contract import MAX_AUDIENCES
from ..errors import ConfigError
from ..models import Share
from ..services.changes import describe
from ..workspace import PRIVACY_NOTICE
from ._common import Count, Finite, State, emit_fields, emit_json, emit_table, json_option, pass_state
from ._confirm import confirm, yes_option


@click.group()
def connections() -> None:
    """Manage connections to destination platforms (admins add and remove them)."""


def read_config(value: str | None) -> dict[str, Any]:
    """``--config``: a JSON file, an inline JSON object, or ``-`` for stdin."""
    if value is None:
        return {}
    if value == "-":
        return parse_json_object(sys.stdin.read(), "the config from stdin")
    if value.lstrip().startswith("{"):
        return parse_json_object(value, "--config")
    path = Path(value)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(
            f"cannot read the config file {value!r}: {reason} (give a JSON file, inline JSON or -)"
        ) from None
    return parse_json_object(text, f"the config file {path.name}")


def warn_inline_secrets(value: str | None, config: dict[str, Any], schema: dict[str, Any]) -> None:
    """Warn (stderr, one line) when --config gave accepted secrets inline: ps and the shell history show them."""
    if value is None or not value.lstrip().startswith("{"):
        return
    inline = sorted(secret_fields(schema) & set(config))
    if inline:
        click.echo(
            f"warning: the secret {', '.join(inline)} was given inline on the command line, where ps and the "
            "shell history show it: give --config a file or - (stdin), or let segport prompt for it",
            err=True,
        )


def prompt_secrets(config: dict[str, Any], schema: dict[str, Any]) -> None:
    """On a terminal, ask (hidden) for required secret fields missing from ``config``."""
    if not sys.stdin.isatty():
        return
    required = set(schema.get("required", []))
    for name in sorted(secret_fields(schema) & required - set(config)):
        config[name] = click.prompt(name, hide_input=True)


@connections.command("notice")
@json_option
def connections_notice(as_json: bool) -> None:
    """Print the data-privacy and compliance notice agreed to with --agree-privacy."""
    emit_json({"notice": PRIVACY_NOTICE}) if as_json else click.echo(PRIVACY_NOTICE)


@connections.command("add")
@click.argument("name")
@click.option("--type", "type_", required=True, help="Destination type (see 'segport plugins list').")
@click.option("--config", "config_value", help="JSON file, inline JSON object, or - for stdin.")
@click.option(
    "--share",
    type=click.Choice([s.value for s in Share]),
    default="admins",
    show_default=True,
    help="Who may use it: admins only, or contributors too.",
)
@click.option("--agree-privacy", is_flag=True, help="Agree to the data-privacy notice (required).")
@click.option("--no-check", is_flag=True, help="Do not check the credentials with the platform.")
@click.option("--profile-cap", type=Count(1), default=None, help="Per-export profile cap (your contract's).")
@json_option
@pass_state
def connections_add(
    state: State,
    name: str,
    type_: str,
    config_value: str | None,
    share: str,
    agree_privacy: bool,
    no_check: bool,
    profile_cap: int | None,
    as_json: bool,
) -> None:
    """Add a connection (admins only)."""
    ws = state.workspace()
    ws.require("connections.add")  # fail on a missing user or role before prompting for anything
    config = read_config(config_value)
    inline = dict(config)  # what --config gave, before any prompt
    if agree_privacy:
        prompt_secrets(config, dict(ws.registry.get(type_).spec().connection_schema))
    connection = ws.add_connection(
        name, type_, config, share=share, agree_privacy=agree_privacy, check=not no_check, profile_cap=profile_cap
    )
    warn_inline_secrets(config_value, inline, dict(ws.registry.get(type_).spec().connection_schema))
    if as_json:
        emit_json(connection.to_dict())
    else:
        click.echo(f"added connection {connection.name!r} ({connection.type}, usable by {connection.share.value})")


@connections.command("list")
@json_option
@pass_state
def connections_list(state: State, as_json: bool) -> None:
    """List connections (contributors and viewers see shared ones, name and type only)."""
    rows = state.workspace().list_connections()
    emit_json(rows) if as_json else emit_table(rows, ["name", "type", "share", "export_user", "created_at"])


@connections.command("show")
@click.argument("name")
@json_option
@pass_state
def connections_show(state: State, name: str, as_json: bool) -> None:
    """Show a connection, secrets hidden (admins only)."""
    ws = state.workspace()
    connection = ws.get_connection(name)
    data = connection.to_dict()
    schema = ws.registry.get(connection.type).spec().connection_schema
    data["config"] = redact(connection.config, schema)
    data["secrets"] = ws.stored_secret_names(name)  # names only, never values
    emit_json(data) if as_json else emit_fields(data)


@connections.command("test")
@click.argument("name")
@json_option
@pass_state
def connections_test(state: State, name: str, as_json: bool) -> None:
    """Check the stored credentials with the platform."""
    result = state.workspace().test_connection(name)
    emit_json(result) if as_json else click.echo(f"ok: {name} authenticates as {result.account}")


@connections.command("audiences")
@click.argument("name")
@json_option
@pass_state
def connections_audiences(state: State, name: str, as_json: bool) -> None:
    """List the audiences (lists) a connection can write to, with their ids.

    The id is what an export's options take (audience_id, list_id). Whoever may use the connection
    may list them; the first 1000 the platform lists are shown.
    """
    audiences = state.workspace().list_audiences(name)
    emit_json(audiences) if as_json else emit_table(audiences, ["id", "name", "member_count"])
    if len(audiences) >= MAX_AUDIENCES:
        click.echo(
            f"note: only the first {MAX_AUDIENCES} audiences the platform lists are shown; type the id of another",
            err=True,
        )


@connections.command("auth")
@click.argument("name")
@click.option("--no-browser", is_flag=True, help="Only print the authorization URL.")
@click.option("--timeout", type=Finite(1), default=300, show_default=True, help="Seconds to wait.")
@json_option
@pass_state
def connections_auth(state: State, name: str, no_browser: bool, timeout: float, as_json: bool) -> None:
    """Authorize a connection with OAuth2 in a browser and store its token (admins only)."""

    def open_url(url: str) -> None:
        click.echo(f"open this URL to authorize segport:\n  {url}", err=True)
        if not no_browser:
            webbrowser.open(url)

    connection = state.workspace().authorize_connection(name, open_url, timeout=timeout)
    emit_json(connection) if as_json else click.echo(f"connection {connection.name!r} authorized")


@connections.command("edit")
@click.argument("name")
@click.option(
    "--config",
    "config_value",
    metavar="FILE|-|JSON",
    help="Settings to change, merged into the stored ones: a JSON file, - for stdin, or inline JSON "
    "(null removes an optional setting). Put new secrets here through a file or stdin, never inline.",
)
@click.option(
    "--rotate",
    is_flag=True,
    help="Ask (hidden, on a terminal) for a new value of each stored secret, e.g. the API key.",
)
@click.option("--rename", "rename", metavar="NEW_NAME", help="New name; its exports follow and keep their sync state.")
@click.option(
    "--share",
    type=click.Choice([s.value for s in Share]),
    default=None,
    help="Who may use it: admins only, or contributors too.",
)
@click.option("--no-check", is_flag=True, help="Do not check changed settings with the platform.")
@click.option(
    "--force",
    is_flag=True,
    help="Accept credentials of another account than before (its exports then resend everything).",
)
@json_option
@pass_state
def connections_edit(
    state: State,
    name: str,
    config_value: str | None,
    rotate: bool,
    rename: str | None,
    share: str | None,
    no_check: bool,
    force: bool,
    as_json: bool,
) -> None:
    """Change a connection in place: rotate its credentials, sharing, name or settings (admins only).

    Its exports keep their sync state and the platform ledger: the next run sends only what
    changed. New credentials are checked with the platform and must reach the same account.
    """
    ws = state.workspace()
    ws.require("connections.edit")  # fail on a missing user or role before prompting for anything
    if config_value is None and not rotate and rename is None and share is None:
        raise ConfigError("nothing to change: give --config, --rotate, --rename or --share", param="config")
    config = read_config(config_value)
    inline = dict(config)  # what --config gave, before any prompt
    if rotate:
        connection = ws.get_connection(name)
        config.update(prompt_rotation(ws.stored_secret_names(name), connection.type, set(config)))
    edited = ws.edit_connection(name, rename=rename, share=share, config=config, check=not no_check, force=force)
    schema = ws.registry.get(edited.connection.type).spec().connection_schema
    warn_inline_secrets(config_value, inline, dict(schema))
    if as_json:
        emit_json(edited.to_dict())
        return
    for note in edited.notes:
        click.echo(f"note: {note}", err=True)
    if not edited.changes:
        click.echo(f"connection {name!r} unchanged")
        return
    click.echo(f"updated connection {edited.connection.name!r}: {describe(edited.changes)}")
    if edited.account is not None:
        click.echo(f"checked: authenticates as {edited.account}")


def prompt_rotation(stored: list[str], type_: str, given: set[str]) -> dict[str, str]:
    """Ask (hidden) for a new value of each stored secret not given otherwise; empty keeps a secret."""
    if not sys.stdin.isatty():
        raise ConfigError(
            "--rotate asks on a terminal: without one, give the new secrets in a file or on stdin with --config",
            param="rotate",
        )
    answers: dict[str, str] = {}
    for secret in stored:
        if secret in given:
            continue
        value = click.prompt(f"new {secret} (empty: keep)", hide_input=True, default="", show_default=False)
        if value:
            answers[secret] = value
    if not answers and not given:
        raise ConfigError(f"no new secret given for the {type_} connection", param="rotate")
    return answers


@connections.command("set-cap")
@click.argument("name")
@click.argument("cap", type=Count(1))
@json_option
@pass_state
def connections_set_cap(state: State, name: str, cap: int, as_json: bool) -> None:
    """Set the per-export profile cap of a connection to match your contract (admins only)."""
    connection = state.workspace().set_profile_cap(name, cap)
    emit_json(connection) if as_json else click.echo(f"profile cap of {name!r} set to {cap:,}")


@connections.command("remove")
@click.argument("name")
@yes_option
@json_option
@pass_state
def connections_remove(state: State, name: str, yes: bool, as_json: bool) -> None:
    """Remove a connection and erase its secrets; its exports stop (admins only; asks first)."""
    question = f"remove connection {name!r} and erase its secrets (its exports are detached and disabled)?"
    detached = state.workspace().connections.remove(name=name, confirm=lambda: confirm(question, yes))
    if as_json:
        emit_json({"removed": "connection", "name": name, "detached_exports": detached})
    else:
        click.echo(f"removed connection {name!r}; {detached} export(s) detached and disabled")
