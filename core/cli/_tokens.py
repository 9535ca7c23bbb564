"""``segport tokens``: the acting user's API tokens for the HTTP API of ``segport serve``."""

from __future__ import annotations

from typing import Any

import click

from ..models import ApiToken
from ._common import State, emit_json, emit_table, json_option, pass_state
from ._confirm import confirm, yes_option
from ._passwords import age_seconds

_COLUMNS = ["name", "user", "created_at", "expires_at", "last_used_at"]


@click.group()
def tokens() -> None:
    """Manage API tokens (``Authorization: Bearer TOKEN`` on the HTTP API of ``segport serve``)."""


@tokens.command("create")
@click.option("--name", required=True, help="A name for the token, unique among yours (e.g. where it is used).")
@click.option("--expires", default=None, callback=age_seconds,
              help="Lifetime: a number and s, min, h, d or w (90d); default: no expiry.")
@json_option
@pass_state
def tokens_create(state: State, name: str, expires: int | None, as_json: bool) -> None:
    """Create an API token for the acting user and print it once (segport keeps only its hash)."""
    token, secret = state.workspace().create_token(name, expires_in_seconds=expires)
    if as_json:
        emit_json({"token": secret, **token.to_dict()})
        return
    click.echo(secret)
    until = f"until {token.expires_at}" if token.expires_at else "without expiry"
    click.echo(f"API token {token.name!r} of user {token.user!r}, valid {until}: store it now, "
               "it is not shown again", err=True)


@tokens.command("list")
@click.option("--all", "every_user", is_flag=True, help="Every user's tokens (admins only).")
@json_option
@pass_state
def tokens_list(state: State, every_user: bool, as_json: bool) -> None:
    """List the acting user's API tokens (names and dates; never the tokens themselves)."""
    rows: list[dict[str, Any]] = [t.to_dict() for t in state.workspace().list_tokens(every_user=every_user)]
    emit_json(rows) if as_json else emit_table(rows, _COLUMNS)


@tokens.command("revoke")
@click.argument("name")
@click.option("--user", "owner", default=None, help="Whose token it is (admins only; default: the acting user's).")
@yes_option
@json_option
@pass_state
def tokens_revoke(state: State, name: str, owner: str | None, yes: bool, as_json: bool) -> None:
    """Revoke an API token: requests bearing it are refused from then on (asks first)."""

    def ask(token: ApiToken) -> None:
        confirm(f"revoke API token {token.name!r} of user {token.user!r} (programs using it lose access)?", yes)

    token = state.workspace().identities.revoke_token(name, user=owner, confirm=ask)
    if as_json:
        emit_json({"revoked": "token", **token.to_dict()})
    else:
        click.echo(f"revoked API token {token.name!r} of user {token.user!r}")
