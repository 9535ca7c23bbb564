"""Which exports, and so which runs, a user may see: admins all of them; others those of shared connections.

As the lists show them (a non-admin's export and run pages hold only exports attached to a
connection shared with contributors), one export or run asked for by name or id: another one is
answered as unknown, so a contributor never learns what an admins-only connection sends where.
"""

from __future__ import annotations

from ..errors import NotFound
from ..models import Export, Role, Run, Share, User
from .context import Context


def may_see(context: Context, user: User, export: Export) -> bool:
    """Return whether ``user`` may see ``export``: admins always; others when its connection is shared."""
    if user.role is Role.ADMIN:
        return True
    if export.connection_id is None:  # detached: its connection, and who could use it, are gone
        return False
    return context.store.get_connection_by_id(export.connection_id).share is Share.CONTRIBUTORS


def check_export(context: Context, user: User, export: Export) -> Export:
    """Return ``export`` when ``user`` may see it; raise it unknown otherwise."""
    if not may_see(context, user, export):
        raise NotFound(f"unknown export {export.name!r} (see 'segport exports list')", kind="export", name=export.name)
    return export


def check_run(context: Context, user: User, run: Run) -> Run:
    """Return ``run`` when ``user`` may see its export; raise it unknown otherwise."""
    if user.role is Role.ADMIN:
        return run
    try:
        visible = may_see(context, user, context.store.get_export(run.export))
    except NotFound:
        visible = False  # its export was removed: as the run lists, only admins see it
    if not visible:
        raise NotFound(f"unknown run {run.id}: never recorded, or pruned (see 'segport runs list')")
    return run


def visible_exports(context: Context, user: User) -> list[Export]:
    """Return the exports ``user`` may see, by name."""
    exports = context.store.list_exports()
    if user.role is Role.ADMIN:
        return exports
    shared = {c.id for c in context.store.list_connections() if c.share is Share.CONTRIBUTORS}
    return [e for e in exports if e.connection_id in shared]
