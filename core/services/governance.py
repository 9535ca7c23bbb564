"""Who may act: users, their roles, and the audit log of what they did."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Callable

from ..errors import ConfigError, InputError
from ..models import AuditEntry, Page, Role, User
from .context import Context, check_name, check_page


class Governance:
    """Users, roles and the audit log (changes by admins only)."""

    def __init__(self, context: Context) -> None:
        self.context = context

    def require(self, action: str) -> User:
        """Return the acting user; raises :class:`segport.PermissionDenied` unless they may do ``action``."""
        return self.context.authorize(action)

    def add_user(self, *, name: str, role: Role | str) -> User:
        """Add a user with a role."""
        actor = self.context.authorize("users.add")
        role = _role(role)
        store = self.context.store
        with store.transaction():
            user = store.add_user(check_name("user", name), role)
            store.audit(actor.name, "users.add", user.name, {"role": role.value})
        return user

    def list_users(self) -> list[User]:
        """Every user with their role."""
        self.context.authorize("users.list")
        return self.context.store.list_users()

    def set_role(self, *, name: str, role: Role | str) -> User:
        """Give a user another role (admins only); the last admin keeps theirs."""
        actor = self.context.authorize("users.role")
        role = _role(role)
        store = self.context.store
        user = store.get_user(name)
        if user.role is role:
            return user
        with store.transaction():  # counted inside: two demotions at once cannot leave no admin
            if user.role is Role.ADMIN and sum(u.role is Role.ADMIN for u in store.list_users()) == 1:
                raise ConfigError(
                    f"user {user.name!r} is the last admin and keeps that role: make another user admin first"
                )
            store.set_user_role(user.name, role)
            store.audit(
                actor.name, "users.role", user.name, {"changes": {"role": {"old": user.role.value, "new": role.value}}}
            )
        return store.get_user(user.name)

    def remove_user(self, *, name: str, confirm: Callable[[], None] | None = None) -> User:
        """Remove a user: from then on they can do nothing. The last admin cannot go.

        What they did stays as it was: exports they own, their runs and their audit entries.
        ``confirm`` is called once the removal is allowed; raising cancels it.
        """
        actor = self.context.authorize("users.remove")
        store = self.context.store
        user = store.get_user(name)
        if user.role is Role.ADMIN and sum(u.role is Role.ADMIN for u in store.list_users()) == 1:
            raise ConfigError(f"user {user.name!r} is the last admin: add another admin first")
        if confirm is not None:
            confirm()
        with store.transaction():
            store.remove_user(user.name)
            store.audit(actor.name, "users.remove", user.name, {"role": user.role.value})
        return user

    def audit_entries(self, *, limit: int = 100) -> list[AuditEntry]:
        """Return the newest ``limit`` audit entries, newest first."""
        self.context.authorize("audit.list")
        return self.context.store.audit_entries(limit)

    def user_page(self, *, limit: int = 50, offset: int = 0, role: Role | str | None = None) -> Page[User]:
        """Return a page of users by name (``role``: with that role only), and how many match."""
        self.context.authorize("users.list")
        check_page(limit, offset)
        return self.context.store.user_page(limit=limit, offset=offset, role=_role(role) if role else None)

    def audit_page(
        self,
        *,
        limit: int = 50,
        offset: int = 0,
        user: str | None = None,
        action: str | None = None,
        target: str | None = None,
        since: str | datetime | None = None,
    ) -> Page[AuditEntry]:
        """Return a page of audit entries newest first, and how many match.

        Filters: by ``user``, ``action`` (``exports.add``, or a family: ``exports``), ``target``,
        and entries at or after ``since`` (ISO 8601; a time without a zone is UTC).
        """
        self.context.authorize("audit.list")
        check_page(limit, offset)
        return self.context.store.audit_page(
            limit=limit, offset=offset, user=user, action=action, target=target, since=_utc(since)
        )


def _utc(value: str | datetime | None) -> str | None:
    """Return a time as the audit writes it (ISO 8601, UTC, to the second); None stays None."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise InputError(
                f"invalid time {value!r}: give an ISO 8601 date or time (2026-12-01 or 2026-12-01T09:30:00Z)",
                param="since",
            ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat(timespec="seconds")


def _role(value: Role | str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise ConfigError(f"unknown role {value!r}: use admin, contributor or viewer") from None
