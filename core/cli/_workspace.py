"""``segport init``, ``users`` and ``audit``."""

from __future__ import annotations

import click

from ..models import Role
from ..workspace import Workspace
from ._common import Count, State, emit_json, emit_table, json_option, pass_state
from ._confirm import confirm, yes_option
from ._passwords import age_seconds, read_password


@click.command()
@click.option("--admin", required=True, help="Name of the first admin user.")
@json_option
@pass_state
def init(state: State, admin: str, as_json: bool) -> None:
    """Create a workspace (database, secret key) with its first admin."""
    with Workspace.create(state.home, admin, database_url=state.database_url) as ws:
        if as_json:
            emit_json({"home": str(ws.home), "admin": admin})
        else:
            click.echo(f"workspace created at {ws.home} with admin {admin!r}")
            click.echo(f"keep {ws.home / 'secret.key'} safe: it decrypts the stored credentials")


@click.group()
def users() -> None:
    """Manage users and their roles (admin, contributor, viewer)."""


@users.command("add")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice([r.value for r in Role]),
    required=True,
    help="What the user may do (see README, Roles).",
)
@json_option
@pass_state
def users_add(state: State, name: str, role: str, as_json: bool) -> None:
    """Add a user (admins only)."""
    user = state.workspace().add_user(name, role)
    emit_json(user.to_dict()) if as_json else click.echo(f"added user {user.name!r} ({user.role.value})")


@users.command("remove")
@click.argument("name")
@yes_option
@json_option
@pass_state
def users_remove(state: State, name: str, yes: bool, as_json: bool) -> None:
    """Remove a user; they can do nothing afterwards (admins only; asks first)."""
    question = f"remove user {name!r} (what they did stays)?"
    user = state.workspace().governance.remove_user(name=name, confirm=lambda: confirm(question, yes))
    if as_json:
        emit_json({"removed": "user", "name": user.name, "role": user.role.value})
    else:
        click.echo(f"removed user {user.name!r} ({user.role.value})")


@users.command("role")
@click.argument("name")
@click.argument("role", type=click.Choice([r.value for r in Role]))
@json_option
@pass_state
def users_role(state: State, name: str, role: str, as_json: bool) -> None:
    """Give a user another role (admins only; the last admin keeps theirs)."""
    ws = state.workspace()
    ws.require("users.role")
    before = {u.name: u.role for u in ws.list_users()}.get(name)
    user = ws.set_user_role(name, role)
    if as_json:
        emit_json(user.to_dict())
    elif before is user.role:
        click.echo(f"user {user.name!r} is {user.role.value} already")
    else:
        click.echo(f"user {user.name!r} is now {user.role.value}")


@users.command("passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin (its final line break removed).")
@json_option
@pass_state
def users_passwd(state: State, name: str, password_stdin: bool, as_json: bool) -> None:
    """Set a user's password for signing in to segport serve (one's own; admins anyone's).

    On a terminal it is asked twice, hidden. The user's web sessions end.
    """
    ws = state.workspace()
    user = ws.identities.password_target(name)  # a refusal comes before the question
    ws.set_password(user.name, read_password(password_stdin))
    emit_json({"user": user.name, "password": "set"}) if as_json else click.echo(f"password of {user.name!r} set")


@users.command("invite")
@click.argument("name")
@click.option("--base-url", default="http://127.0.0.1:8400", show_default=True,
              help="Address of segport serve as the invited user reaches it.")
@click.option("--expires", default="7d", show_default=True, callback=age_seconds,
              help="How long the link works: a number and s, min, h, d or w.")
@json_option
@pass_state
def users_invite(state: State, name: str, base_url: str, expires: int, as_json: bool) -> None:
    """Print a one-time link for a user to set their password (admins only; voids their older links)."""
    token = state.workspace().invite_user(name, ttl_seconds=expires)
    url = f"{base_url.rstrip('/')}/invite/{token}"
    if as_json:
        emit_json({"user": name, "url": url, "expires_in_seconds": expires})
    else:
        click.echo(url)
        click.echo(f"send this link to {name!r} only: it sets their password once", err=True)


@users.command("list")
@json_option
@pass_state
def users_list(state: State, as_json: bool) -> None:
    """List users."""
    rows = [u.to_dict() for u in state.workspace().list_users()]
    emit_json(rows) if as_json else emit_table(rows, ["name", "role", "created_at"])


@click.group()
def audit() -> None:
    """Read the audit log of every change and run."""


@audit.command("list")
@click.option("--limit", type=Count(1), default=50, show_default=True, help="Newest entries to show.")
@json_option
@pass_state
def audit_list(state: State, limit: int, as_json: bool) -> None:
    """Show the audit log, newest first (admins only)."""
    rows = [e.to_dict() for e in state.workspace().audit_entries(limit)]
    emit_json(rows) if as_json else emit_table(rows, ["id", "at", "user", "action", "target", "detail"])
