"""The audiences (lists) a connection's credentials can write to, listed by its plugin.

For choosing an export's audience by name instead of typing its id. A read: nothing is audited,
nothing at the platform changes (a refreshed OAuth token is stored, as after any call).
"""

from __future__ import annotations

from contextlib import closing
from typing import Any, Callable, Mapping

import requests

from ..contract import MAX_AUDIENCES, Audience, Destination, lists_audiences
from ..errors import ConfigError, PluginContractError
from ..governor import GovernedAdapter
from ..models import Connection
from ..pipeline.engine import credential_gate
from ..registry import Registry


def list_audiences(
    registry: Registry,
    connection: Connection,
    config: Mapping[str, Any],
    save_secrets: Callable[[Mapping[str, Any]], None],
) -> list[Audience]:
    """Return the audiences the plugin of ``connection`` lists, at most :data:`MAX_AUDIENCES`, in its order.

    ``config`` is the connection's config with its secrets; ``save_secrets`` stores what the auth
    handler refreshed. The caller checked the acting user's permission. Raise :class:`ConfigError`
    when the plugin cannot list audiences (the id is then typed).
    """
    destination = registry.get(connection.type)
    if not lists_audiences(destination):
        raise ConfigError(
            f"this platform's plugin ({connection.type}) cannot list audiences: type the id "
            "(the export's options name it; see 'segport plugins show " + connection.type + "')",
            param="name",
        )
    session = _governed_session(connection.type, destination, config)
    auth = session.auth = destination.auth(config)
    with closing(session):
        found = destination.list_audiences(session, config)
    changed = auth.updated_secrets()
    if changed:
        save_secrets(changed)
    return _checked(connection.type, found)


def _governed_session(kind: str, destination: Destination, config: Mapping[str, Any]) -> requests.Session:
    """Return a session whose every call holds a slot of the credential's call governor, as a run's do."""
    limit = destination.spec().limits.max_concurrency
    session = requests.Session()
    adapter = GovernedAdapter(credential_gate(kind, destination, config, limit, "calls"), pool_maxsize=limit)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def _checked(kind: str, found: object) -> list[Audience]:
    """Return the plugin's answer as a list of distinct audiences (first of each id), cut to the cap."""
    if not isinstance(found, list) or not all(isinstance(a, Audience) for a in found):
        raise PluginContractError(
            f"the {kind} plugin's list_audiences returned {type(found).__name__}, not a list of segport.Audience: "
            "report it to the plugin's authors"
        )
    seen: set[str] = set()
    audiences = []
    for audience in found:
        if audience.id not in seen:
            seen.add(audience.id)
            audiences.append(audience)
    return audiences[:MAX_AUDIENCES]
