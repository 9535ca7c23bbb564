"""Names the acting user may see, and "did you mean ...?" for a name that matched nothing.

Every service method is wrapped (:func:`suggest_names`): a :class:`NotFound` for a connection,
export, segment or user name leaves the service with the closest names among those the acting
user may list, so every interface (CLI, embedding apps) says it the same way. Only names the user
could list are ever offered: a contributor is never told of an admin-only connection, and an
unknown acting user is told nothing.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import re
from typing import Any, Callable, TypeVar

from ..errors import NotFound, PermissionDenied, SegportError
from ..models import Role, Share
from ..permissions import authorize
from .context import Context
from .visibility import visible_exports

T = TypeVar("T")

#: The listing permission each kind of name needs before it is offered.
LIST_ACTIONS = {
    "connection": "connections.list",
    "export": "exports.list",
    "segment": "segments.list",
    "user": "users.list",
}
MAX_SUGGESTIONS = 3
CUTOFF = 0.6  # difflib's ratio; case is ignored
_SEE_ALSO = re.compile(r"\s*(\(see [^()]*\))$")


def visible_names(context: Context, kind: str) -> list[str]:
    """Return the names of ``kind`` the acting user may list (none when they may not, or are unknown).

    Silent: a refusal here is neither raised nor audited.
    """
    action = LIST_ACTIONS.get(kind)
    if action is None or not context.user_name:
        return []
    store = context.store
    try:
        user = store.get_user(context.user_name)
        authorize(context.pm, user, action)
    except (NotFound, PermissionDenied):
        return []
    if kind == "connection":
        shown = [c for c in store.list_connections() if user.role is Role.ADMIN or c.share is Share.CONTRIBUTORS]
        return [c.name for c in shown]
    if kind == "export":
        return [e.name for e in visible_exports(context, user)]
    if kind == "segment":
        return [s.name for s in store.list_segments()]
    return [u.name for u in store.list_users()]


def close_names(name: str, candidates: list[str]) -> list[str]:
    """Return up to three of ``candidates`` closest to ``name`` (case ignored), best first."""
    folded: dict[str, str] = {}
    for candidate in candidates:
        folded.setdefault(candidate.casefold(), candidate)
    target = name.casefold()
    near = difflib.get_close_matches(target, list(folded), n=MAX_SUGGESTIONS, cutoff=CUTOFF)
    if target in folded and target not in near:
        near.insert(0, target)
    return [folded[n] for n in near if folded[n] != name][:MAX_SUGGESTIONS]


def alternatives(names: list[str]) -> str:
    """Join quoted names: ``'a'``, ``'a' or 'b'``, ``'a', 'b' or 'c'``."""
    quoted = [repr(n) for n in names]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"


def with_suggestions(error: NotFound, context: Context) -> NotFound:
    """Return ``error`` with the close names the acting user may see, or ``error`` itself when there are none."""
    if error.kind is None or error.name is None or error.suggestions is not None:
        return error
    error.suggestions = []  # decided once, however many services it crosses
    if error.kind == "user" and error.name == context.user_name:
        return error  # the acting user is unknown: they learn nothing
    try:
        near = close_names(error.name, visible_names(context, error.kind))
    except SegportError:
        return error  # the suggestion is a courtesy: the error stays the one to report
    if not near:
        return error
    see = _SEE_ALSO.search(error.message)
    message = f"unknown {error.kind} {error.name!r}: did you mean {alternatives(near)}?" + (
        f" {see.group(1)}" if see else ""
    )
    better = NotFound(message, kind=error.kind, name=error.name, internal_message=error.internal_message)
    better.suggestions = near
    return better


def _suggesting(method: Callable[..., T]) -> Callable[..., T]:
    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> T:
        try:
            return method(self, *args, **kwargs)
        except NotFound as exc:
            better = with_suggestions(exc, self.context)
            if better is exc:
                raise
            raise better from None

    return call


def suggest_names(service: type[T]) -> type[T]:
    """Wrap every public method of a service class so its NotFound errors suggest close names."""
    for attribute, member in list(vars(service).items()):
        if not attribute.startswith("_") and inspect.isfunction(member):
            setattr(service, attribute, _suggesting(member))
    return service
