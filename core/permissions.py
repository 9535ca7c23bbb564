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

# Every role manages its own credentials; an admin those of anyone (and invites people).
ON_ONESELF = frozenset({"users.passwd", "tokens.create", "tokens.list", "tokens.revoke"})

_HINTS = {
    Role.VIEWER: "viewers can only read; ask an admin to change your role",
    Role.CONTRIBUTOR: "ask an admin to do it, or to share the connection with contributors",
}
_OTHERS_HINT = "only admins manage other users' passwords and API tokens"


def allowed_by_role(role: Role, action: str, *, shared: bool = False, own: bool = False) -> bool:
    """Apply the built-in matrix: admins may do everything, contributors data and shared exports, viewers read.

    ``own``: the action is on the user's own credentials (password, API tokens), which every role manages.
    """
    if role is Role.ADMIN:
        return True
    if own and action in ON_ONESELF:
        return True
    if action in READ:
        return True
    if role is Role.CONTRIBUTOR:
        return action in CONTRIBUTOR or (shared and action in ON_SHARED_CONNECTION)
    return False


def authorize(
    pm: pluggy.PluginManager,
    user: User,
    action: str,
    resource: object = None,
    *,
    shared: bool = False,
    own: bool = False,
) -> None:
    """Raise :class:`PermissionDenied` unless ``user`` may perform ``action`` on ``resource``.

    :param shared: whether the connection involved is shared with contributors.
    :param own: whether the action is on the user's own credentials.
    """
    verdict = pm.hook.segport_permission(user=user, action=action, resource=resource)
    if verdict is None:
        verdict = allowed_by_role(user.role, action, shared=shared, own=own)
    if not verdict:
        what = action.replace(".", " ")
        name = getattr(resource, "name", None)
        target = f" {name!r}" if isinstance(name, str) else ""
        hint = _OTHERS_HINT if action in ON_ONESELF and not own else _HINTS.get(user.role, "")
        hint = hint or "a permission policy plugin denied it"
        raise PermissionDenied(f"user {user.name!r} ({user.role.value}) may not {what}{target}: {hint}")
