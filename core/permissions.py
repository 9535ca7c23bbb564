"""Who may do what: the role matrix, after any ``segport_permission`` hook had its say."""

from __future__ import annotations

import pluggy

from .errors import PermissionDenied
from .models import Role, User

READ = frozenset(
    {
        "users.list",
        "connections.list",
        "exports.list",
        "exports.show",
        "segments.list",
        "profiles.show",
        "profiles.list",
        "runs.list",
        "runs.show",
        "runs.rejects",
        "schedule.show",
        "plugins.list",
    }
)
# Contributors work with data and with exports on connections shared with them.
CONTRIBUTOR = READ | {"profiles.load", "profiles.remove", "segments.load", "segments.define", "segments.remove"}
ON_SHARED_CONNECTION = frozenset(
    {
        "connections.use",
        "exports.add",
        "exports.edit",
        "exports.remove",
        "exports.run",
        "exports.enable",
        "exports.disable",
    }
)

_HINTS = {
    Role.VIEWER: "viewers can only read; ask an admin to change your role",
    Role.CONTRIBUTOR: "ask an admin to do it, or to share the connection with contributors",
}


def allowed_by_role(role: Role, action: str, *, shared: bool = False) -> bool:
    """Apply the built-in matrix: admins may do everything, contributors data and shared exports, viewers read."""
    if role is Role.ADMIN:
        return True
    if action in READ:
        return True
    if role is Role.CONTRIBUTOR:
        return action in CONTRIBUTOR or (shared and action in ON_SHARED_CONNECTION)
    return False


def authorize(
    pm: pluggy.PluginManager, user: User, action: str, resource: object = None, *, shared: bool = False
) -> None:
    """Raise :class:`PermissionDenied` unless ``user`` may perform ``action`` on ``resource``.

    :param shared: whether the connection involved is shared with contributors.
    """
    verdict = pm.hook.segport_permission(user=user, action=action, resource=resource)
    if verdict is None:
        verdict = allowed_by_role(user.role, action, shared=shared)
    if not verdict:
        what = action.replace(".", " ")
        name = getattr(resource, "name", None)
        target = f" {name!r}" if isinstance(name, str) else ""
        hint = _HINTS.get(user.role, "a permission policy plugin denied it")
        raise PermissionDenied(f"user {user.name!r} ({user.role.value}) may not {what}{target}: {hint}")
