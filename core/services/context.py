"""What every service shares: the workspace's parts, the acting user and the permission check."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy

from ..errors import ConfigError, InputError, NotFound, PermissionDenied, WorkspaceError
from ..executor import Executor
from ..models import Connection, Share, User
from ..permissions import authorize
from ..pipeline.dispatcher import RetryPolicy
from ..registry import Registry
from ..store import Store
from ..vault import Vault

_NAME = re.compile(r"^[^\x00-\x1f]{1,100}$")
MAX_PAGE = 500  # the most items a page of a list may hold


@dataclass
class Context:
    """One open workspace acting as one user: what the services are built on.

    :param home: the workspace folder (secret key, reject files), made absolute.
    :param executor: with one, refresh and scheduled runs are queued for workers.
    :param user_name: the acting user's name; None until one is given.
    """

    home: Path
    store: Store
    vault: Vault
    registry: Registry
    pm: pluggy.PluginManager
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    executor: Executor | None = None
    user_name: str | None = None

    def __post_init__(self) -> None:
        self.home = self.home.absolute()  # reject paths name the folder opened, whatever the process's folder later

    @property
    def user(self) -> User:
        """The acting user; raises when none is set or the name is unknown.

        Checked before any lookup, so an unknown or removed user learns nothing, not even which
        exports or connections exist.
        """
        if not self.user_name:
            raise PermissionDenied("no acting user: name a user of this workspace to act as", param="user")
        return self.store.get_user(self.user_name)

    def identify(self, action: str) -> User:
        """Return the acting user, about to attempt ``action``; an unknown or removed user's attempt is audited.

        The audit entry names the attempted action only, never the resource: the refusal (unknown
        user) still tells the caller nothing about what exists.
        """
        try:
            return self.user
        except NotFound:
            assert self.user_name is not None
            self._audit(self.user_name, action, {"reason": "unknown user"})
            raise

    def authorize(self, action: str, resource: object = None, *, shared: bool = False, own: bool = False) -> User:
        """Return the acting user, once allowed to do ``action`` (on ``resource``); a refusal is audited.

        ``own``: the action is on the acting user's own credentials (see :mod:`segport.permissions`).
        """
        user = self.identify(action)
        try:
            authorize(self.pm, user, action, resource, shared=shared, own=own)
        except PermissionDenied:
            self._audit_denied(user, action, resource)
            raise
        return user

    def usable_connection(self, action: str, name: str) -> Connection:
        """Return the connection ``name`` once the acting user may do ``action`` with it (shared or not).

        An unknown user learns nothing; an unknown name is refused as any other connection would be,
        before it is reported unknown.
        """
        self.identify(action)
        try:
            connection = self.store.get_connection(name)
        except NotFound:
            self.authorize(action)
            raise
        self.authorize(action, connection, shared=connection.share is Share.CONTRIBUTORS)
        return connection

    def _audit_denied(self, user: User, action: str, resource: object) -> None:
        """Record a refused attempt in the audit log: action ``denied``, target the attempted action."""
        name = getattr(resource, "name", None)
        detail = {"role": user.role.value, **({"resource": name} if isinstance(name, str) else {})}
        self._audit(user.name, action, detail)

    def _audit(self, user: str, action: str, detail: dict[str, Any]) -> None:
        """Write one ``denied`` audit entry; the acting name is cut to 100 printable characters."""
        shown = "".join(c if c.isprintable() else "?" for c in user[:100])
        try:
            with self.store.transaction():
                self.store.audit(shown, "denied", action, detail)
        except WorkspaceError:
            pass  # a read-only or busy workspace still refuses; the refusal is what matters


def check_name(kind: str, name: str) -> str:
    """``name`` without surrounding blanks, refused unless it is 1 to 100 printable characters."""
    name = name.strip()
    if not _NAME.match(name):
        raise ConfigError(f"invalid {kind} name {name!r}: use 1 to 100 printable characters", param="name")
    return name


def spec_hint(destination: str) -> str:
    """Where a config or options error points the operator: the destination's schemas."""
    return f"see 'segport plugins show {destination}'"


def check_page(limit: int, offset: int) -> None:
    """Refuse a page of a list asking for no items, more than :data:`MAX_PAGE`, or from a negative offset."""
    if not 1 <= limit <= MAX_PAGE:
        raise InputError(f"invalid page size {limit}: ask for 1 to {MAX_PAGE} items", param="limit")
    if offset < 0:
        raise InputError(f"invalid offset {offset}: give 0 or more items to skip", param="offset")
