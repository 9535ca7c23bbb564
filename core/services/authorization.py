"""A connection's OAuth2 authorization in two steps: begin (the URL and a state), complete (the redirect).

The CLI runs both around a one-shot loopback receiver (``segport connections auth``); the web console
sends the browser to the URL and completes from its callback route. Each begun authorization is kept
in the workspace (settings ``oauth.pending.<sha-256 of the state>``) until it completes or expires:
its state is bound to the connection, the redirect URI and the user who began it, and is used once.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

import requests

from .. import oauth
from ..config import split_secrets, validate
from ..contract import Destination, OAuth2Flow
from ..errors import AuthError, ConfigError
from ..models import Connection
from ..oauth import AuthorizationStart
from .context import Context, spec_hint

PENDING = "oauth.pending."  # + the SHA-256 of the state, in hex


def begin(
    ctx: Context,
    name: str,
    redirect_uri: str,
    lifetime: float,
    full_config: Callable[[Connection], dict[str, Any]],
) -> AuthorizationStart:
    """Check the user may authorize ``name``, keep a new state for it, and return the platform's authorize URL."""
    actor = ctx.authorize("connections.auth")
    connection = ctx.store.get_connection(name)
    config = full_config(connection)
    flow = _flow(ctx, connection, config)
    _check_redirect_uri(redirect_uri)
    if not (math.isfinite(lifetime) and lifetime > 0):
        raise ConfigError("an authorization's lifetime must be a positive number of seconds", param="lifetime")
    state = oauth.new_state()
    record = {
        "connection": connection.id,
        "redirect_uri": redirect_uri,
        "user": actor.name,
        "expires": _now() + lifetime,
    }
    with ctx.store.transaction():
        for key, value in ctx.store.settings_with_prefix(PENDING).items():
            if _expired(value):  # abandoned authorizations
                ctx.store.set_setting(key, None)
        ctx.store.set_setting(_key(state), json.dumps(record))
    return AuthorizationStart(flow.authorize_url(config, redirect_uri, state), state)


def complete(
    ctx: Context,
    name: str,
    *,
    state: str,
    expected_state: str,
    redirect_uri: str,
    query: Mapping[str, str],
    full_config: Callable[[Connection], dict[str, Any]],
    check_credentials: Callable[[Destination, Mapping[str, Any]], str],
) -> Connection:
    """Check the redirect against the begun authorization, trade its code for tokens and store them.

    The begun authorization is used up first, whatever follows: a state works once.
    """
    actor = ctx.authorize("connections.auth")
    connection = ctx.store.get_connection(name)
    config = full_config(connection)
    flow = _flow(ctx, connection, config)
    with ctx.store.transaction():
        kept = ctx.store.take_setting(_key(expected_state))
    oauth.check_state(query, state=state, expected_state=expected_state)
    _check_begun(kept, connection, redirect_uri, actor.name)
    code = oauth.redirect_code(query)
    with requests.Session() as session:
        tokens = flow.exchange(session, config, code, redirect_uri)
    destination = ctx.registry.get(connection.type)
    schema = destination.spec().connection_schema
    full = validate({**config, **tokens}, schema, f"connection {name!r} config", hint=spec_hint(connection.type))
    account = check_credentials(destination, full)
    plain, secrets = split_secrets(full, schema)
    with ctx.store.transaction():
        ctx.store.update_connection_config(connection.id, plain, ctx.vault.encrypt(secrets))
        ctx.store.set_checked_account(connection.id, account)
        ctx.store.audit(actor.name, "connections.auth", name)
    return ctx.store.get_connection(name)


def discard(ctx: Context, state: str) -> None:
    """Forget a begun authorization that will not complete (the CLI's wait ended without a redirect)."""
    with ctx.store.transaction():
        ctx.store.take_setting(_key(state))


def _flow(ctx: Context, connection: Connection, config: Mapping[str, Any]) -> OAuth2Flow:
    flow = ctx.registry.get(connection.type).oauth(config)
    if flow is None:
        raise ConfigError(f"connection {connection.name!r} does not use OAuth2 (set auth_method to oauth2 to use it)")
    return flow


def _check_begun(kept: str | None, connection: Connection, redirect_uri: str, user: str) -> None:
    """Refuse a redirect whose state was never begun here, was used already, expired, or belongs elsewhere."""
    if kept is None:
        raise AuthError(
            "the authorization redirect carried a state that is unknown or already used (a replayed or stale "
            "request): start the authorization again"
        )
    record = json.loads(kept)
    if _expired(kept):
        raise AuthError(
            f"the authorization of connection {connection.name!r} took too long (its state expired): "
            "start it again and accept within a few minutes"
        )
    if record.get("connection") != connection.id or record.get("redirect_uri") != redirect_uri:
        raise AuthError(
            "the authorization redirect belongs to another connection or callback than the one begun "
            "(a forged or stale request): start the authorization again"
        )
    if record.get("user") != user:
        raise AuthError(
            "the authorization was begun by another user: the user who completes it must begin it, so start it again"
        )


def _check_redirect_uri(uri: str) -> None:
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.fragment:
        raise ConfigError(
            f"the redirect URI {uri!r} is not an absolute http(s) URL without a fragment: give the callback's full URL",
            param="redirect_uri",
        )


def _key(state: str) -> str:
    return PENDING + hashlib.sha256(state.encode("utf-8")).hexdigest()


def _expired(kept: str) -> bool:
    try:
        expires = float(json.loads(kept)["expires"])
    except (ValueError, KeyError, TypeError):
        return True  # unreadable: treat as gone
    return _now() >= expires


def _now() -> float:
    """Return the wall-clock time in seconds (the tests move it)."""
    return time.time()
