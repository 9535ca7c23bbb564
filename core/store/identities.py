"""Who a request is: password hashes, API tokens, web sessions, invites and failed sign-ins.

Every secret handed out (token, session id, invite token) is stored as its SHA-256 digest, never
as itself (see :mod:`segport.store.schema`). Times are ISO 8601 UTC strings of one format, so they
compare as text. The callers (:mod:`segport.services.identities`) pass the times in.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, insert, select, update

from ..errors import AlreadyExists
from ..models import ApiToken
from .credentials import InviteRow, SessionRow
from .database import Repository
from .schema import api_tokens, invites, login_failures, users, web_sessions

_TOKEN = (api_tokens.c.name, api_tokens.c.user, api_tokens.c.created_at, api_tokens.c.expires_at,
          api_tokens.c.last_used_at)


def _token(row: Any) -> ApiToken:
    return ApiToken(row.name, row.user, row.created_at, row.expires_at, row.last_used_at)


class Identities(Repository):
    """Password hashes, API tokens, web sessions, invites and failed sign-ins."""

    # -- passwords ------------------------------------------------------------------------------
    def password_hash(self, name: str) -> str | None:
        """Return the user's password hash (None: no password, or no such user)."""
        found: str | None = self.db.execute(select(users.c.password_hash).where(users.c.name == name)).scalar()
        return found

    def set_password_hash(self, name: str, password_hash: str, at: str) -> None:
        """Store the user's new password hash, changed at ``at``."""
        change = update(users).where(users.c.name == name)
        self.db.execute(change.values(password_hash=password_hash, password_changed_at=at))

    # -- API tokens -----------------------------------------------------------------------------
    def add_token(self, user: str, name: str, digest: str, at: str, expires_at: str | None) -> ApiToken:
        """Store a new API token of ``user`` by its digest; raise AlreadyExists if the user has one named so."""
        row = {"user": user, "name": name, "digest": digest, "created_at": at, "expires_at": expires_at}
        try:
            self.db.execute(insert(api_tokens).values(row))
        except self.integrity_errors:
            raise AlreadyExists(
                f"user {user!r} has an API token named {name!r} already: revoke it first, or choose another name"
            ) from None
        return ApiToken(name, user, at, expires_at, None)

    def list_tokens(self, user: str | None = None) -> list[ApiToken]:
        """Return the API tokens of ``user`` (everyone's when None), by user and name."""
        query = select(*_TOKEN).order_by(api_tokens.c.user, api_tokens.c.name)
        if user is not None:
            query = query.where(api_tokens.c.user == user)
        return [_token(row) for row in self.db.execute(query)]

    def get_token(self, user: str, name: str) -> ApiToken | None:
        """Return ``user``'s API token named ``name`` (None: there is none)."""
        row = self.db.execute(select(*_TOKEN).where(api_tokens.c.user == user, api_tokens.c.name == name)).first()
        return _token(row) if row is not None else None

    def remove_token(self, user: str, name: str) -> None:
        """Delete ``user``'s API token named ``name``."""
        self.db.execute(delete(api_tokens).where(api_tokens.c.user == user, api_tokens.c.name == name))

    def token_by_digest(self, digest: str) -> ApiToken | None:
        """Return the API token whose secret has ``digest`` (None: unknown or revoked)."""
        row = self.db.execute(select(*_TOKEN).where(api_tokens.c.digest == digest)).first()
        return _token(row) if row is not None else None

    def touch_token(self, digest: str, at: str) -> None:
        """Record that the token with ``digest`` was used at ``at``."""
        self.db.execute(update(api_tokens).where(api_tokens.c.digest == digest).values(last_used_at=at))

    # -- web sessions ---------------------------------------------------------------------------
    def add_session(self, digest: str, user: str, at: str, expires_at: str, client: str | None) -> None:
        """Store a new web session of ``user`` by the digest of its id."""
        row = {"digest": digest, "user": user, "created_at": at, "expires_at": expires_at, "last_seen_at": at,
               "client": client}
        self.db.execute(insert(web_sessions).values(row))

    def get_session(self, digest: str) -> SessionRow | None:
        """Return the web session whose id has ``digest`` (None: unknown or ended)."""
        query = select(web_sessions.c.user, web_sessions.c.expires_at, web_sessions.c.last_seen_at)
        row = self.db.execute(query.where(web_sessions.c.digest == digest)).first()
        return SessionRow(row.user, row.expires_at, row.last_seen_at) if row is not None else None

    def touch_session(self, digest: str, at: str) -> None:
        """Record that the session with ``digest`` was seen at ``at``."""
        self.db.execute(update(web_sessions).where(web_sessions.c.digest == digest).values(last_seen_at=at))

    def remove_session(self, digest: str) -> bool:
        """End the web session whose id has ``digest``; False when there was none."""
        return bool(self.db.execute(delete(web_sessions).where(web_sessions.c.digest == digest)).rowcount)

    def remove_sessions(self, user: str) -> int:
        """End every web session of ``user``; return how many there were."""
        return int(self.db.execute(delete(web_sessions).where(web_sessions.c.user == user)).rowcount)

    def remove_expired_sessions(self, now: str) -> None:
        """Forget the web sessions that expired before ``now``."""
        self.db.execute(delete(web_sessions).where(web_sessions.c.expires_at <= now))

    # -- invites --------------------------------------------------------------------------------
    def add_invite(self, digest: str, user: str, created_by: str, at: str, expires_at: str) -> None:
        """Store a new invite for ``user``; their older unused invites are voided."""
        self.remove_unused_invites(user)
        row = {"digest": digest, "user": user, "created_by": created_by, "created_at": at, "expires_at": expires_at}
        self.db.execute(insert(invites).values(row))

    def get_invite(self, digest: str) -> InviteRow | None:
        """Return the invite whose token has ``digest`` (None: unknown or voided)."""
        query = select(invites.c.user, invites.c.created_by, invites.c.expires_at, invites.c.used_at)
        row = self.db.execute(query.where(invites.c.digest == digest)).first()
        return InviteRow(row.user, row.created_by, row.expires_at, row.used_at) if row is not None else None

    def use_invite(self, digest: str, at: str) -> bool:
        """Mark the invite used at ``at``; False when it was used already (another request won)."""
        change = update(invites).where(invites.c.digest == digest, invites.c.used_at.is_(None)).values(used_at=at)
        return bool(self.db.execute(change).rowcount)

    def remove_unused_invites(self, user: str) -> None:
        """Void every unused invite of ``user``."""
        self.db.execute(delete(invites).where(invites.c.user == user, invites.c.used_at.is_(None)))

    # -- failed sign-ins ------------------------------------------------------------------------
    def add_login_failure(self, subjects: list[str], at: str) -> None:
        """Record a failed sign-in at ``at`` against each subject (``user:NAME``, ``client:ADDRESS``)."""
        self.db.execute(insert(login_failures), [{"subject": s, "at": at} for s in subjects])

    def login_failures(self, subject: str, since: str) -> tuple[int, str | None]:
        """Return how many failed sign-ins ``subject`` has since ``since``, and the earliest of them."""
        query = select(func.count().label("n"), func.min(login_failures.c.at).label("first"))
        row = self.db.execute(query.where(login_failures.c.subject == subject, login_failures.c.at >= since)).one()
        first: str | None = row.first
        return int(row.n), first

    def clear_login_failures(self, subject: str | None = None, *, before: str | None = None) -> None:
        """Forget failed sign-ins: of ``subject`` (all of theirs), or of everyone before ``before``."""
        statement = delete(login_failures)
        if subject is not None:
            statement = statement.where(login_failures.c.subject == subject)
        if before is not None:
            statement = statement.where(login_failures.c.at < before)
        self.db.execute(statement)
