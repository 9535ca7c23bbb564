"""What the store keeps of who a request is: the protocol :class:`Credentials` and its rows.

Part of :class:`segport.store.interface.Store`: password hashes, API tokens, web sessions, invites
and failed sign-ins (:mod:`segport.store.identities` implements it). Secrets are stored as their
SHA-256 digest (hex); times are ISO 8601 UTC strings the caller passes.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

from ..models import ApiToken


class SessionRow(NamedTuple):
    """A stored web session: whose it is, until when, and when it was last seen."""

    user: str
    expires_at: str
    last_seen_at: str


class InviteRow(NamedTuple):
    """A stored invite: for whom, by whom, until when, and when it was used (None: not yet)."""

    user: str
    created_by: str
    expires_at: str
    used_at: str | None


class Credentials(Protocol):
    """Password hashes, API tokens, web sessions, invites and failed sign-ins."""

    def password_hash(self, name: str) -> str | None:
        """Return the user's password hash (None: no password, or no such user)."""

    def set_password_hash(self, name: str, password_hash: str, at: str) -> None:
        """Store the user's new password hash, changed at ``at``."""

    def add_token(self, user: str, name: str, digest: str, at: str, expires_at: str | None) -> ApiToken:
        """Store a new API token of ``user`` by its digest; raise AlreadyExists if the user has one named so."""

    def list_tokens(self, user: str | None = None) -> list[ApiToken]:
        """Return the API tokens of ``user`` (everyone's when None), by user and name."""

    def get_token(self, user: str, name: str) -> ApiToken | None:
        """Return ``user``'s API token named ``name`` (None: there is none)."""

    def remove_token(self, user: str, name: str) -> None:
        """Delete ``user``'s API token named ``name``."""

    def token_by_digest(self, digest: str) -> ApiToken | None:
        """Return the API token whose secret has ``digest`` (None: unknown or revoked)."""

    def touch_token(self, digest: str, at: str) -> None:
        """Record that the token with ``digest`` was used at ``at``."""

    def add_session(self, digest: str, user: str, at: str, expires_at: str, client: str | None) -> None:
        """Store a new web session of ``user`` by the digest of its id."""

    def get_session(self, digest: str) -> SessionRow | None:
        """Return the web session whose id has ``digest`` (None: unknown or ended)."""

    def touch_session(self, digest: str, at: str) -> None:
        """Record that the session with ``digest`` was seen at ``at``."""

    def remove_session(self, digest: str) -> bool:
        """End the web session whose id has ``digest``; False when there was none."""

    def remove_sessions(self, user: str) -> int:
        """End every web session of ``user``; return how many there were."""

    def remove_expired_sessions(self, now: str) -> None:
        """Forget the web sessions that expired before ``now``."""

    def add_invite(self, digest: str, user: str, created_by: str, at: str, expires_at: str) -> None:
        """Store a new invite for ``user``; their older unused invites are voided."""

    def get_invite(self, digest: str) -> InviteRow | None:
        """Return the invite whose token has ``digest`` (None: unknown or voided)."""

    def use_invite(self, digest: str, at: str) -> bool:
        """Mark the invite used at ``at``; False when it was used already."""

    def remove_unused_invites(self, user: str) -> None:
        """Void every unused invite of ``user``."""

    def add_login_failure(self, subjects: list[str], at: str) -> None:
        """Record a failed sign-in at ``at`` against each subject (``user:NAME``, ``client:ADDRESS``)."""

    def login_failures(self, subject: str, since: str) -> tuple[int, str | None]:
        """Return how many failed sign-ins ``subject`` has since ``since``, and the earliest of them."""

    def clear_login_failures(self, subject: str | None = None, *, before: str | None = None) -> None:
        """Forget failed sign-ins: of ``subject`` (all of theirs), or of everyone before ``before``."""
