"""Settings, the audit log and users."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import delete, insert, select, update

from ..errors import AlreadyExists, NotFound
from ..models import AuditEntry, Role, User
from .database import Repository, dumps, now
from .schema import api_tokens, audit, invites, settings, users, web_sessions

_USER = (users.c.name, users.c.role, users.c.created_at)


class Governance(Repository):
    """Workspace settings, the audit log and the users.

    :attr:`audit_client` is the client address of the request being served (a web server sets it
    per request; None for the local CLI): every audit entry written records it.
    """

    audit_client: str | None = None

    # -- settings and audit ---------------------------------------------------------------------
    def get_setting(self, key: str) -> str | None:
        """Return a workspace setting's value (None: not set)."""
        value: str | None = self.db.execute(select(settings.c.value).where(settings.c.key == key)).scalar()
        return value

    def set_setting(self, key: str, value: str | None) -> None:
        """Set a workspace setting (``value`` None: remove it)."""
        if value is None:
            self.db.execute(delete(settings).where(settings.c.key == key))
            return
        upsert = self.db.insert(settings).values(key=key, value=value)
        self.db.execute(upsert.on_conflict_do_update(index_elements=[settings.c.key], set_={"value": value}))

    def take_setting(self, key: str) -> str | None:
        """Remove a workspace setting and return its value (None: not set); of concurrent takers, one gets it."""
        value: str | None = self.db.execute(
            delete(settings).where(settings.c.key == key).returning(settings.c.value)
        ).scalar()
        return value

    def settings_with_prefix(self, prefix: str) -> dict[str, str]:
        """Return the workspace settings whose key starts with ``prefix``: {key: value}."""
        rows = self.db.execute(
            select(settings.c.key, settings.c.value).where(settings.c.key.startswith(prefix, autoescape=True))
        )
        return {row.key: row.value for row in rows}

    def audit(
        self, user: str, action: str, target: str, detail: dict[str, Any] | None = None, *, client: str | None = None
    ) -> None:
        """Record ``user``'s ``action`` on ``target`` in the audit log, with ``detail`` (JSON-ready).

        ``client``: the client address (default :attr:`audit_client`).
        """
        entry = {"at": now(), "user": user, "action": action, "target": target, "detail": dumps(detail or {}),
                 "client": client if client is not None else self.audit_client}
        self.db.execute(insert(audit).values(entry))

    def audit_entries(self, limit: int = 100) -> list[AuditEntry]:
        """Return the newest ``limit`` audit log entries, newest first."""
        columns = (audit.c.id, audit.c.at, audit.c.user, audit.c.action, audit.c.target, audit.c.detail, audit.c.client)
        rows = self.db.execute(select(*columns).order_by(audit.c.id.desc()).limit(limit))
        return [AuditEntry(r.id, r.at, r.user, r.action, r.target, json.loads(r.detail), r.client) for r in rows]

    # -- users ----------------------------------------------------------------------------------
    def add_user(self, name: str, role: Role) -> User:
        """Add a user with ``role``; raise AlreadyExists if the name is taken."""
        try:
            self.db.execute(insert(users).values(name=name, role=role.value, created_at=now()))
        except self.integrity_errors:
            raise AlreadyExists(f"user {name!r} exists already (see 'segport users list')") from None
        return self.get_user(name)

    def get_user(self, name: str) -> User:
        """Return the user named ``name``; raise NotFound if there is none."""
        row = self.db.execute(select(*_USER).where(users.c.name == name)).first()
        if row is None:
            raise NotFound(
                f"unknown user {name!r}: pass an existing user with --as or SEGPORT_USER (see 'segport users list')",
                kind="user",
                name=name,
            )
        return User(row.name, Role(row.role), row.created_at)

    def list_users(self) -> list[User]:
        """Return every user, by name."""
        rows = self.db.execute(select(*_USER).order_by(users.c.name))
        return [User(r.name, Role(r.role), r.created_at) for r in rows]

    def set_user_role(self, name: str, role: Role) -> None:
        """Give the user ``role`` (an unknown name changes nothing)."""
        self.db.execute(update(users).where(users.c.name == name).values(role=role.value))

    def remove_user(self, name: str) -> None:
        """Delete the user with their API tokens, web sessions and invites.

        What they did (exports they own, runs, audit entries) stays as it was. The credentials go
        by the foreign keys' cascade, and explicitly too (a SQLite connection without foreign keys).
        """
        for table in (api_tokens, web_sessions, invites):
            self.db.execute(delete(table).where(table.c.user == name))
        self.db.execute(delete(users).where(users.c.name == name))
