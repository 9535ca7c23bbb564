"""Connections: a destination's configuration, encrypted secrets and profile cap."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Row, delete, insert, select, update

from ..errors import AlreadyExists, NotFound
from ..models import Connection, Share
from .database import Repository, dumps, now
from .schema import connections, exports

_c = connections.c
_COLUMNS = (
    _c.id,
    _c.name,
    _c.type,
    _c.share,
    _c.config,
    _c.secrets.is_not(None).label("has_secrets"),
    _c.profile_cap,
    _c.privacy_agreed_by,
    _c.privacy_agreed_at,
    _c.export_user,
    _c.created_at,
)


def _connection(row: Row[Any]) -> Connection:
    return Connection(
        row.id,
        row.name,
        row.type,
        Share(row.share),
        json.loads(row.config),
        bool(row.has_secrets),
        row.profile_cap,
        row.privacy_agreed_by,
        row.privacy_agreed_at,
        row.export_user,
        row.created_at,
    )


class Connections(Repository):
    """The connections to destinations."""

    def add_connection(
        self,
        *,
        name: str,
        type: str,
        share: Share,
        config: dict[str, Any],
        secrets: bytes | None,
        profile_cap: int | None,
        user: str,
    ) -> Connection:
        """Add a connection (``secrets`` already encrypted); ``user`` agrees to its privacy terms.

        Raise AlreadyExists if the name is taken.
        """
        stamp = now()
        values = {
            "name": name,
            "type": type,
            "share": share.value,
            "config": dumps(config),
            "secrets": secrets,
            "profile_cap": profile_cap,
            "privacy_agreed_by": user,
            "privacy_agreed_at": stamp,
            "export_user": user,
            "created_at": stamp,
        }
        try:
            self.db.execute(insert(connections).values(values))
        except self.integrity_errors:
            raise AlreadyExists(f"a connection named {name!r} exists already: choose another display name") from None
        return self.get_connection(name)

    def get_connection(self, name: str) -> Connection:
        """Return the connection named ``name``; raise NotFound if there is none."""
        row = self.db.execute(select(*_COLUMNS).where(_c.name == name)).first()
        if row is None:
            message = f"unknown connection {name!r} (see 'segport connections list')"
            raise NotFound(message, kind="connection", name=name)
        return _connection(row)

    def get_connection_by_id(self, connection_id: int) -> Connection:
        """Return the connection with id ``connection_id``; raise NotFound if there is none."""
        row = self.db.execute(select(*_COLUMNS).where(_c.id == connection_id)).first()
        if row is None:
            raise NotFound(f"unknown connection id {connection_id}")
        return _connection(row)

    def list_connections(self) -> list[Connection]:
        """Return every connection, by name."""
        return [_connection(r) for r in self.db.execute(select(*_COLUMNS).order_by(_c.name))]

    def connection_secrets(self, connection_id: int) -> bytes | None:
        """Return the connection's encrypted secrets (None: it has none)."""
        secrets: bytes | None = self.db.execute(select(_c.secrets).where(_c.id == connection_id)).scalar()
        return secrets

    def update_connection_config(self, connection_id: int, config: dict[str, Any], secrets: bytes | None) -> None:
        """Replace the connection's configuration and encrypted secrets."""
        values = {"config": dumps(config), "secrets": secrets}
        self.db.execute(update(connections).where(_c.id == connection_id).values(values))

    def update_connection(self, connection_id: int, *, name: str, share: Share) -> None:
        """Rename the connection and set its sharing; its exports follow the new name.

        Raise AlreadyExists if another connection has the name.
        """
        try:
            self.db.execute(update(connections).where(_c.id == connection_id).values(name=name, share=share.value))
        except self.integrity_errors:
            raise AlreadyExists(f"a connection named {name!r} exists already: choose another display name") from None
        self.db.execute(update(exports).where(exports.c.connection_id == connection_id).values(connection=name))

    def checked_account(self, connection_id: int) -> str | None:
        """Return the account the credentials reached at their last successful check (None: never checked)."""
        account: str | None = self.db.execute(select(_c.checked_account).where(_c.id == connection_id)).scalar()
        return account

    def set_checked_account(self, connection_id: int, account: str) -> None:
        """Remember the account the connection's credentials reached at a successful check."""
        self.db.execute(update(connections).where(_c.id == connection_id).values(checked_account=account))

    def set_profile_cap(self, connection_id: int, cap: int | None) -> None:
        """Set (None: clear) the most profiles the connection's exports may select."""
        self.db.execute(update(connections).where(_c.id == connection_id).values(profile_cap=cap))

    def remove_connection(self, connection_id: int) -> int:
        """Erase the connection (secrets included); its exports are detached and disabled. Returns their count."""
        detached = self.db.execute(
            update(exports)
            .where(exports.c.connection_id == connection_id)
            .values(connection_id=None, enabled=0, updated_at=now())
        )
        self.db.execute(update(connections).where(_c.id == connection_id).values(secrets=None))
        self.db.execute(delete(connections).where(_c.id == connection_id))
        return int(detached.rowcount)
