"""Pages of the workspace's lists (exports, runs, audit, connections, segments, users) with their totals.

Each page is one query for its rows and one for its total, on indexes (migration 0009), so a page
costs the same at offset 0 and deep in a long history: the rows of runs and audit entries are
found by id in a subquery over an index, then read by id. Who may see what is the caller's
(``shared_only``): it applies before paging, so a total never counts what the caller may not see.
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any, Sequence

from sqlalchemy import ColumnElement, Row, Select, and_, func, select

from ..models import AuditEntry, Connection, ExportSummary, Page, Role, Run, Segment, User
from .catalog import FilterCacheQueries
from .connections import _COLUMNS as _CONNECTION
from .connections import _connection
from .exports import _COLUMNS as _EXPORT
from .exports import _export
from .governance import _USER
from .runs import _COLUMNS as _RUN
from .runs import _run
from .schema import audit, connections, exports, filter_members, profiles, runs, segment_members, segments, users

_r, _e, _a = runs.c, exports.c, audit.c
_SHARED = select(connections.c.id).where(connections.c.share == "contributors").scalar_subquery()
_LAST_RUN = [c.label(f"run_{c.name}") for c in _RUN]
_AUDIT = (_a.id, _a.at, _a.user, _a.action, _a.target, _a.detail, _a.client)
_SEGMENT = (
    segments.c.id,
    segments.c.name,
    segments.c.kind,
    segments.c.expression,
    segments.c.created_by,
    segments.c.updated_at,
)


def _last_run(row: Row[Any]) -> Any:
    """Return the run columns of an export row (``run_*``) as a run's row, or None when it never ran."""
    if row.run_id is None:
        return None
    return _run(SimpleNamespace(**{c.name: getattr(row, f"run_{c.name}") for c in _RUN}))


def action_family(action: str) -> ColumnElement[bool]:
    """Match an action (``exports.add``), or a family of them when it has no dot (``exports``: ``exports.*``)."""
    if "." in action:
        return _a.action == action
    return and_(_a.action >= f"{action}.", _a.action < f"{action}/")  # '/' sorts right after '.'


class Lists(FilterCacheQueries):
    """Pages of every list a console or an API shows, each with the total it was cut from."""

    def _page(self, rows: Select[Any], where: Sequence[ColumnElement[bool]], table: Any) -> tuple[Sequence[Any], int]:
        found = self.db.execute(rows).all()
        total = self.db.execute(select(func.count()).select_from(table).where(*where)).scalar_one()
        return found, int(total)

    def export_page(
        self,
        *,
        limit: int,
        offset: int = 0,
        connection: str | None = None,
        enabled: bool | None = None,
        search: str | None = None,
        shared_only: bool = False,
    ) -> Page[ExportSummary]:
        """Return exports by name, each with its last run (dry runs aside), in one query for the page.

        ``connection``: attached to the connection of that name; ``search``: the name holds it (any
        case); ``shared_only``: attached to a connection shared with contributors.
        """
        where: list[ColumnElement[bool]] = []
        if connection is not None:
            where.append(and_(_e.connection == connection, _e.connection_id.is_not(None)))
        if enabled is not None:
            where.append(_e.enabled == int(enabled))
        if search:
            where.append(func.lower(_e.name).contains(search.lower(), autoescape=True))
        if shared_only:
            where.append(_e.connection_id.in_(_SHARED))
        page = select(_e.id).where(*where).order_by(_e.name).limit(limit).offset(offset).subquery()
        latest = (
            select(_r.id)
            .where(_r.export_id == _e.id, _r.status != "planned")
            .order_by(_r.id.desc())
            .limit(1)
            .correlate(exports)
            .scalar_subquery()
        )
        rows = (
            select(*_EXPORT, *_LAST_RUN)
            .select_from(exports.join(page, page.c.id == _e.id).outerjoin(runs, _r.id == latest))
            .order_by(_e.name)
        )
        found, total = self._page(rows, where, exports)
        return Page([ExportSummary(_export(r), _last_run(r)) for r in found], total, limit, offset)

    def run_page(
        self,
        *,
        limit: int,
        offset: int = 0,
        export: str | None = None,
        status: str | None = None,
        trigger: str | None = None,
        user: str | None = None,
        shared_only: bool = False,
    ) -> Page[Run]:
        """Return runs newest first, filtered by export name, status, trigger and user.

        ``shared_only``: runs of exports attached to a connection shared with contributors.
        """
        where: list[ColumnElement[bool]] = []
        for column, value in ((_r.export, export), (_r.status, status), (_r.trigger, trigger), (_r.user, user)):
            if value is not None:
                where.append(column == value)
        if shared_only:
            # with another filter, its index leads and the export id is checked in it: '+ 0' keeps SQLite's
            # planner from reading every visible export's runs instead (what it does once ANALYZE ran)
            export_id = _r.export_id + 0 if where else _r.export_id
            where.append(export_id.in_(select(_e.id).where(_e.connection_id.in_(_SHARED))))
        ids = select(_r.id).where(*where).order_by(_r.id.desc()).limit(limit).offset(offset)
        rows = select(*_RUN).where(_r.id.in_(ids)).order_by(_r.id.desc())
        found, total = self._page(rows, where, runs)
        return Page([_run(r) for r in found], total, limit, offset)

    def audit_page(
        self,
        *,
        limit: int,
        offset: int = 0,
        user: str | None = None,
        action: str | None = None,
        target: str | None = None,
        since: str | None = None,
    ) -> Page[AuditEntry]:
        """Return audit entries newest first, filtered by user, action, target and time.

        ``action``: one action (``exports.add``) or a family (``exports``); ``since``: at or after
        that time (ISO 8601, UTC, as the entries are written).
        """
        where: list[ColumnElement[bool]] = []
        if user is not None:
            where.append(_a.user == user)
        if action is not None:
            where.append(action_family(action))
        if target is not None:
            where.append(_a.target == target)
        if since is not None:
            where.append(_a.at >= since)
        ids = select(_a.id).where(*where).order_by(_a.id.desc()).limit(limit).offset(offset)
        rows = select(*_AUDIT).where(_a.id.in_(ids)).order_by(_a.id.desc())
        found, total = self._page(rows, where, audit)
        entries = [AuditEntry(r.id, r.at, r.user, r.action, r.target, json.loads(r.detail), r.client) for r in found]
        return Page(entries, total, limit, offset)

    def connection_page(self, *, limit: int, offset: int = 0, shared_only: bool = False) -> Page[Connection]:
        """Return connections by name (``shared_only``: those shared with contributors)."""
        where = [connections.c.share == "contributors"] if shared_only else []
        rows = select(*_CONNECTION).where(*where).order_by(connections.c.name).limit(limit).offset(offset)
        found, total = self._page(rows, where, connections)
        return Page([_connection(r) for r in found], total, limit, offset)

    def user_page(self, *, limit: int, offset: int = 0, role: Role | None = None) -> Page[User]:
        """Return users by name (``role``: with that role only)."""
        where = [users.c.role == role.value] if role is not None else []
        rows = select(*_USER).where(*where).order_by(users.c.name).limit(limit).offset(offset)
        found, total = self._page(rows, where, users)
        return Page([User(r.name, Role(r.role), r.created_at) for r in found], total, limit, offset)

    def segment_page(self, *, limit: int, offset: int = 0, search: str | None = None) -> Page[Segment]:
        """Return segments by name (``search``: whose name holds it, any case)."""
        where = [func.lower(segments.c.name).contains(search.lower(), autoescape=True)] if search else []
        rows = select(*_SEGMENT).where(*where).order_by(segments.c.name).limit(limit).offset(offset)
        found, total = self._page(rows, where, segments)
        items = [Segment(r.id, r.name, r.kind, r.expression, r.created_by, r.updated_at) for r in found]
        return Page(items, total, limit, offset)

    def member_count(self, segment: Segment) -> int | None:
        """Count a segment's members in SQL: a static one's that have a profile, a filter one's from its cache.

        None for a filter segment whose cache is behind the last profile load (count it another way).
        """
        if segment.kind == "static":
            m = segment_members.c
            query = select(func.count()).select_from(segment_members.join(profiles, profiles.c.key == m.profile_key))
            return int(self.db.execute(query.where(m.segment_id == segment.id)).scalar_one())
        current = self.cached_seq(segment.id)
        if current is None or current < self.last_load():
            return None
        query = select(func.count()).select_from(filter_members).where(filter_members.c.segment_id == segment.id)
        return int(self.db.execute(query).scalar_one())
