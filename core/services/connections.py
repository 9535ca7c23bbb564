"""Connections: destination accounts, their credentials (encrypted at rest) and OAuth."""

from __future__ import annotations

import builtins
from typing import Any, Callable, Mapping

import requests

from .. import oauth
from ..config import secret_fields, split_secrets, validate
from ..contract import Audience, Destination
from ..errors import AuthError, ConfigError, SegportError
from ..http import TRANSPORT_ERRORS
from ..models import Connection, ConnectionCheck, ConnectionEdit, Page, Role, Share, SharedConnection
from . import authorization
from .audiences import list_audiences
from .changes import diff
from .context import Context, check_name, check_page, spec_hint


class Connections:
    """Connections to destination platforms (added, changed and removed by admins only)."""

    def __init__(self, context: Context) -> None:
        self.context = context

    def add(
        self,
        *,
        name: str,
        type: str,
        config: Mapping[str, Any],
        share: Share | str = Share.ADMINS,
        agree_privacy: bool = False,
        check: bool = True,
        profile_cap: int | None = None,
    ) -> Connection:
        """Add a connection after the privacy consent, validation and a credential check."""
        ctx = self.context
        actor = ctx.authorize("connections.add")
        name = check_name("connection", name)
        share = _share(share)
        if not agree_privacy:
            raise ConfigError(
                "adding a connection needs the data-privacy consent: personal data leaves this workspace "
                "for the platform; read the privacy notice and agree to it",
                param="agree_privacy",
            )
        if profile_cap is not None and profile_cap < 1:
            raise ConfigError("the profile cap must be a positive number of profiles", param="profile_cap")
        destination = ctx.registry.get(type)
        schema = destination.spec().connection_schema
        full = validate(config, schema, f"connection {name!r} config", hint=spec_hint(type))
        account = None
        if check and destination.oauth(full) is None:  # OAuth is checked once the flow ran
            account = _check_credentials(destination, full)
        plain, secrets = split_secrets(full, schema)
        with ctx.store.transaction():
            connection = ctx.store.add_connection(
                name=name,
                type=type,
                share=share,
                config=plain,
                secrets=ctx.vault.encrypt(secrets) if secrets else None,
                profile_cap=profile_cap,
                user=actor.name,
            )
            if account is not None:
                ctx.store.set_checked_account(connection.id, account)
            ctx.store.audit(
                actor.name,
                "connections.add",
                name,
                {"type": type, "share": share.value, "privacy_agreed": True, "checked": check},
            )
        return connection

    def list(self) -> list[Connection | SharedConnection]:
        """Admins see every connection in full; others see the shared ones' name and type only."""
        user = self.context.authorize("connections.list")
        connections = self.context.store.list_connections()
        if user.role is Role.ADMIN:
            return list(connections)
        return [SharedConnection(c.name, c.type) for c in connections if c.share is Share.CONTRIBUTORS]

    def page(self, *, limit: int = 50, offset: int = 0) -> Page[Connection | SharedConnection]:
        """Return a page of connections by name, and how many there are, as :meth:`list` shows them.

        Non-admins see the shared ones only (name and type), counted before the page is cut.
        """
        user = self.context.authorize("connections.list")
        check_page(limit, offset)
        admin = user.role is Role.ADMIN
        found = self.context.store.connection_page(limit=limit, offset=offset, shared_only=not admin)
        items: builtins.list[Connection | SharedConnection] = [
            c if admin else SharedConnection(c.name, c.type) for c in found.items
        ]
        return Page(items, found.total, found.limit, found.offset)

    def get(self, *, name: str) -> Connection:
        """One connection (its config without secrets)."""
        self.context.authorize("connections.show")
        return self.context.store.get_connection(name)

    def secret_names(self, *, name: str) -> builtins.list[str]:
        """Return the names (never the values) of the secrets stored for a connection."""
        self.context.authorize("connections.show")
        connection = self.context.store.get_connection(name)
        token = self.context.store.connection_secrets(connection.id)
        return sorted(self.context.vault.decrypt(token)) if token else []

    def checked_account(self, *, name: str) -> str | None:
        """Return the account the connection's credentials reached at their last successful check (None: never)."""
        self.context.authorize("connections.show")
        connection = self.context.store.get_connection(name)
        return self.context.store.checked_account(connection.id)

    def test(self, *, name: str) -> ConnectionCheck:
        """Check the stored credentials with the plugin's cheap call (a refreshed token is kept)."""
        self.context.authorize("connections.test")
        connection = self.context.store.get_connection(name)
        destination = self.context.registry.get(connection.type)
        auth = destination.auth(self.full_config(connection))
        with requests.Session() as session:
            session.auth = auth
            account = auth.check(session)
        changed = auth.updated_secrets()
        if changed:
            self.save_secrets(connection, changed)
        with self.context.store.transaction():
            self.context.store.set_checked_account(connection.id, account)
        return ConnectionCheck(connection=name, account=account)

    def audiences(self, *, name: str) -> builtins.list[Audience]:
        """Return the audiences (lists) the connection can write to, as its plugin lists them (a read, not audited).

        Whoever may use the connection may list them: admins, and contributors when it is shared with
        them. A plugin that cannot list audiences raises :class:`ConfigError` (the id is then typed).
        """
        connection = self.context.usable_connection("connections.use", name)
        return list_audiences(
            self.context.registry,
            connection,
            self.full_config(connection),
            lambda changed: self.save_secrets(connection, changed),
        )

    def authorize(self, *, name: str, open_url: Callable[[str], Any], timeout: float = 300.0) -> Connection:
        """Run the destination's OAuth2 flow for a connection through a one-shot loopback redirect; store the tokens.

        ``open_url`` shows the user the authorize URL; the redirect must arrive within ``timeout`` seconds.
        """
        with oauth.LoopbackReceiver() as receiver:
            redirect_uri = receiver.redirect_uri
            start = self.begin_authorization(name=name, redirect_uri=redirect_uri, lifetime=timeout + 60)
            try:
                open_url(start.url)
                query = receiver.wait(timeout)
            except BaseException:
                authorization.discard(self.context, start.state)
                raise
        if query is None:
            authorization.discard(self.context, start.state)
            raise AuthError(f"no authorization arrived within {timeout:.0f} s: run 'segport connections auth' again")
        return self.complete_authorization(
            name=name, state=query.get("state", ""), expected_state=start.state, redirect_uri=redirect_uri, query=query
        )

    def begin_authorization(
        self, *, name: str, redirect_uri: str, lifetime: float = oauth.STATE_LIFETIME
    ) -> oauth.AuthorizationStart:
        """Begin a connection's OAuth2 authorization: the platform's URL to send the user to, and its state.

        The state is random, bound to the connection, ``redirect_uri`` and the acting user, usable once
        and for ``lifetime`` seconds; keep it (e.g. in the browser's session) for :meth:`complete_authorization`.
        """
        return authorization.begin(self.context, name, redirect_uri, lifetime, self.full_config)

    def complete_authorization(
        self, *, name: str, state: str, expected_state: str, redirect_uri: str, query: Mapping[str, str]
    ) -> Connection:
        """Finish an authorization from the platform's redirect: check the state, trade the code, store the tokens.

        ``state`` is the redirect's, ``expected_state`` the one :meth:`begin_authorization` returned,
        ``query`` the redirect's parameters (``code``, or ``error`` when the user declined). The
        credentials are checked with the platform before they are stored, encrypted.
        """
        return authorization.complete(
            self.context,
            name,
            state=state,
            expected_state=expected_state,
            redirect_uri=redirect_uri,
            query=query,
            full_config=self.full_config,
            check_credentials=_check_credentials,
        )

    def edit(
        self,
        *,
        name: str,
        rename: str | None = None,
        share: Share | str | None = None,
        config: Mapping[str, Any] | None = None,
        check: bool = True,
        force: bool = False,
    ) -> ConnectionEdit:
        """Change a connection in place: its exports keep their sync state and the ledger.

        ``config`` is merged into the stored one (a None value removes an optional key); new
        credentials are checked with the platform unless ``check`` is false, and refused when they
        reach another account than the old ones did, unless ``force`` (then the exports' sync
        state and the ledger are dropped: the next runs send everything).
        """
        ctx = self.context
        actor = ctx.authorize("connections.edit")
        connection = ctx.store.get_connection(name)
        destination = ctx.registry.get(connection.type)
        schema = destination.spec().connection_schema
        old = self.full_config(connection)
        merged = {k: v for k, v in {**old, **(config or {})}.items() if v is not None}
        full = validate(merged, schema, f"connection {name!r} config", hint=spec_hint(connection.type))
        new_name = check_name("connection", rename) if rename else connection.name
        new_share = _share(share) if share is not None else connection.share
        secrets = secret_fields(schema)
        changes = diff(
            {"name": connection.name, "share": connection.share.value}, {"name": new_name, "share": new_share.value}
        )
        changes.update(diff(old, full, prefix="config.", hidden=secrets))
        account, notes, other_account = None, [], False
        if check and full != old and destination.oauth(full) is None:
            account = _check_credentials(destination, full)  # only the new credentials must answer
            before = _account_or_none(destination, old)
            if before is None:  # rotated (refused) or an endpoint that no longer answers: the last check's account
                before = ctx.store.checked_account(connection.id)
                notes.append(
                    "the old credentials could not be checked now; compared with the account they reached at "
                    f"their last check ({before})"
                    if before is not None
                    else "the old credentials could not be checked now, so the account could not be compared"
                )
            if before is not None and before != account:
                other_account = True
                if not force:
                    raise ConfigError(
                        f"the new credentials of connection {name!r} reach {account}, not {before}: its exports' "
                        "audiences are not there; add a new connection for that account, or pass --force to "
                        "switch (the next runs then send everything)",
                        param="config",
                    )
                notes.append(f"another account ({account}): the exports' sync state was dropped")
        elif full != old and not check:
            notes.append("the new settings were not checked with the platform (--no-check)")
        if not changes:
            if account is not None:
                with ctx.store.transaction():
                    ctx.store.set_checked_account(connection.id, account)
            return ConnectionEdit(connection, {}, account, ("nothing changed",))
        plain, stored = split_secrets(full, schema)
        with ctx.store.transaction():
            if full != old:
                ctx.store.update_connection_config(connection.id, plain, ctx.vault.encrypt(stored) if stored else None)
            if new_name != connection.name or new_share is not connection.share:
                ctx.store.update_connection(connection.id, name=new_name, share=new_share)
            if other_account:
                ctx.store.forget_connection_state(connection.id)
            if account is not None:
                ctx.store.set_checked_account(connection.id, account)
            detail = {"changes": changes, "checked": account is not None, "sync_state_reset": other_account}
            ctx.store.audit(actor.name, "connections.edit", name, detail)
        return ConnectionEdit(ctx.store.get_connection(new_name), changes, account, tuple(notes))

    def set_profile_cap(self, *, name: str, cap: int | None) -> Connection:
        """Set (or with None, clear) the most profiles one export of this connection may select."""
        ctx = self.context
        actor = ctx.authorize("connections.edit")
        if cap is not None and cap < 1:
            raise ConfigError("the profile cap must be a positive number of profiles", param="cap")
        connection = ctx.store.get_connection(name)
        with ctx.store.transaction():
            ctx.store.set_profile_cap(connection.id, cap)
            change = {"profile_cap": {"old": connection.profile_cap, "new": cap}}
            ctx.store.audit(actor.name, "connections.set-cap", name, {"profile_cap": cap, "changes": change})
        return ctx.store.get_connection(name)

    def remove(self, *, name: str, confirm: Callable[[], None] | None = None) -> int:
        """Erase a connection and its secrets; its exports stay, detached and disabled. Returns their count.

        ``confirm`` is called once the removal is allowed and the connection found; raising cancels it.
        """
        ctx = self.context
        actor = ctx.authorize("connections.remove")
        connection = ctx.store.get_connection(name)
        if confirm is not None:
            confirm()
        with ctx.store.transaction():
            detached = ctx.store.remove_connection(connection.id)
            ctx.store.audit(actor.name, "connections.remove", name, {"detached_exports": detached})
        return detached

    # -- for the other services (no permission check: their callers checked) ----------------------
    def full_config(self, connection: Connection) -> dict[str, Any]:
        """Return the connection's config with its secrets decrypted."""
        return full_config(self.context, connection)

    def save_secrets(self, connection: Connection, changed: Mapping[str, Any]) -> None:
        """Store config values a plugin changed while running (refreshed tokens), encrypted as before."""
        ctx = self.context
        schema = ctx.registry.get(connection.type).spec().connection_schema
        plain, secrets = split_secrets({**self.full_config(connection), **changed}, schema)
        with ctx.store.transaction():
            ctx.store.update_connection_config(connection.id, plain, ctx.vault.encrypt(secrets))
            ctx.store.audit(ctx.user.name, "connections.refresh", connection.name)


def full_config(ctx: Context, connection: Connection) -> dict[str, Any]:
    """Return the connection's config with its secrets decrypted."""
    token = ctx.store.connection_secrets(connection.id)
    secrets = ctx.vault.decrypt(token) if token else {}
    return {**connection.config, **secrets}


def account_or_none(ctx: Context, connection: Connection) -> str | None:
    """Return the account a stored connection reaches; when it cannot be checked now, the one its last check reached.

    None: neither is known (the platform refuses the credentials, or its endpoint does not answer, and
    no check ever succeeded).
    """
    account = _account_or_none(ctx.registry.get(connection.type), full_config(ctx, connection))
    return account if account is not None else ctx.store.checked_account(connection.id)


def check_account(ctx: Context, connection: Connection) -> str:
    """Return the account a stored connection reaches (and remember it); raise AuthError when it is refused."""
    account = _check_credentials(ctx.registry.get(connection.type), full_config(ctx, connection))
    with ctx.store.transaction():
        ctx.store.set_checked_account(connection.id, account)
    return account


def _check_credentials(destination: Destination, config: Mapping[str, Any]) -> str:
    auth = destination.auth(config)
    with requests.Session() as session:
        session.auth = auth
        return auth.check(session)


def _account_or_none(destination: Destination, config: Mapping[str, Any]) -> str | None:
    """Return the account ``config`` reaches, or None when it cannot be checked now.

    That is: the platform refuses it (a rotated or revoked key), or its endpoint does not answer (a
    base URL the platform retired), or it answers with an error.
    """
    try:
        return _check_credentials(destination, config)
    except SegportError:
        return None
    except TRANSPORT_ERRORS:
        return None


def _share(value: Share | str) -> Share:
    try:
        return Share(value)
    except ValueError:
        raise ConfigError(f"unknown share {value!r}: use admins or contributors", param="share") from None
