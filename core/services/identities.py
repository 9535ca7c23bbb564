"""Who is asking: passwords (argon2id), invites, sign-in with throttling, web sessions and API tokens.

The local CLI acts as the user it is told to be; a server (``segport serve``) asks this service who
a request is: a signed-in browser session (:meth:`Identities.session_user`) or an API token
(:meth:`Identities.authenticate_token`). Passwords are argon2id hashes (argon2-cffi's defaults).
Every secret handed out (session id, invite token, API token) is 32 random bytes and stored as its
SHA-256 digest only: a fast hash is right for such a secret (nothing to guess), unlike a password.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Callable

from ..errors import ConfigError, NotFound, PermissionDenied, TooManyAttempts, Unauthenticated, WorkspaceError
from ..extras import install_hint
from ..models import ApiToken, User
from .context import Context, check_name

if TYPE_CHECKING:
    from argon2 import PasswordHasher

MIN_PASSWORD = 10  # characters
TOKEN_PREFIX = "segport_"
THROTTLE_WINDOW = timedelta(minutes=15)
MAX_USER_FAILURES = 5  # failed sign-ins per user name in the window; the next attempt is refused
MAX_CLIENT_FAILURES = 20  # failed sign-ins per client address in the window
TOUCH_EVERY = timedelta(minutes=1)  # last_seen_at / last_used_at are written at most this often
WRONG_LOGIN = "wrong username or password"

_hasher: PasswordHasher | None = None
_dummy_hash: str | None = None


def hasher() -> PasswordHasher:
    """Return the password hasher (argon2id, argon2-cffi's recommended parameters)."""
    global _hasher
    if _hasher is None:
        try:
            from argon2 import PasswordHasher
        except ImportError as exc:
            raise WorkspaceError(install_hint(exc, "web")) from None
        _hasher = PasswordHasher()
    return _hasher


def _dummy() -> str:
    """Return a hash to verify against for an unknown user or one without a password (same cost, same answer)."""
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = hasher().hash(secrets.token_urlsafe(16))
    return _dummy_hash


def digest(secret: str) -> str:
    """Return the SHA-256 (hex) of a random secret, as the store keeps it."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds")


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _printable(name: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in name[:100])


class Identities:
    """Passwords, invites, sign-in, web sessions and API tokens of the workspace's users."""

    def __init__(self, context: Context) -> None:
        self.context = context
        self.clock: Callable[[], datetime] = _utcnow  # what time it is (tests move it)

    def _now(self) -> datetime:
        return self.clock()

    # -- passwords and invites ------------------------------------------------------------------
    def password_target(self, name: str) -> User:
        """Return the user named ``name`` once the acting user may set their password (before asking for it)."""
        actor = self.context.identify("users.passwd")
        target = self.context.store.get_user(name)
        self.context.authorize("users.passwd", target, own=target.name == actor.name)
        return target

    def set_password(self, name: str, password: str) -> None:
        """Set a user's password (one's own; admins anyone's); their web sessions end."""
        actor = self.context.identify("users.passwd")
        store = self.context.store
        target = self.password_target(name)
        password_hash = self._hash(target.name, password)
        with store.transaction():
            self._store_password(target.name, password_hash)
            store.audit(actor.name, "users.passwd", target.name, {})

    def invite(self, name: str, *, ttl_seconds: int = 7 * 86400) -> str:
        """Return a one-time invite token for an existing user to set their password (admins only).

        A new invite voids the user's older unused ones.
        """
        actor = self.context.authorize("users.invite")
        store = self.context.store
        target = store.get_user(name)
        if ttl_seconds <= 0:
            raise ConfigError(f"invalid invite lifetime {ttl_seconds}s: use a positive duration", param="ttl_seconds")
        token = secrets.token_urlsafe(32)
        at = self._now()
        expires = at + timedelta(seconds=ttl_seconds)
        with store.transaction():
            store.add_invite(digest(token), target.name, actor.name, _iso(at), _iso(expires))
            store.audit(actor.name, "users.invite", target.name, {"expires_at": _iso(expires)})
        return token

    def accept_invite(self, token: str, password: str) -> User:
        """Set the invited user's password from a one-time invite token; return the user."""
        store = self.context.store
        key = digest(token)
        invite = store.get_invite(key)
        at = _iso(self._now())
        if invite is None or invite.used_at is not None or invite.expires_at <= at:
            why = "was used already" if invite is not None and invite.used_at else "is unknown or expired"
            raise PermissionDenied(f"this invite link {why}: ask an admin for a new one")
        password_hash = self._hash(invite.user, password)
        with store.transaction():
            if not store.use_invite(key, at):
                raise PermissionDenied("this invite link was used already: ask an admin for a new one")
            self._store_password(invite.user, password_hash)
            store.audit(invite.user, "users.passwd", invite.user, {"invite": True})
        return store.get_user(invite.user)

    def _hash(self, name: str, password: str) -> str:
        if len(password) < MIN_PASSWORD:
            raise ConfigError(f"the password is too short: use at least {MIN_PASSWORD} characters", param="password")
        if password == name:
            raise ConfigError("the password is the user name: choose another one", param="password")
        return hasher().hash(password)

    def _store_password(self, name: str, password_hash: str) -> None:
        """Store the hash (inside a transaction): the user's sessions and unused invites end with the old password."""
        store = self.context.store
        store.set_password_hash(name, password_hash, _iso(self._now()))
        store.remove_sessions(name)
        store.remove_unused_invites(name)

    # -- sign-in --------------------------------------------------------------------------------
    def login(self, name: str, password: str, *, client: str | None) -> User:
        """Return the user once ``password`` is theirs; failures are throttled and audited.

        An unknown user, one without a password and a wrong password all cost one argon2 verify
        and get the same message. After :data:`MAX_USER_FAILURES` failures for a user name, or
        :data:`MAX_CLIENT_FAILURES` from a client address, within :data:`THROTTLE_WINDOW`, further
        attempts are refused (:class:`TooManyAttempts`) until the oldest failure leaves the window.
        """
        from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

        store = self.context.store
        moment = self._now()
        subjects = [f"user:{name[:200]}"] + ([f"client:{client[:200]}"] if client else [])  # typed: bounded
        self._throttle(name, subjects, moment, client)
        stored = store.password_hash(name)
        try:
            hasher().verify(stored or _dummy(), password)
            ok = stored is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            ok = False
        if not ok:
            with store.transaction():
                store.clear_login_failures(before=_iso(moment - THROTTLE_WINDOW))
                store.add_login_failure(subjects, _iso(moment))
                store.audit(_printable(name), "denied", "login", {"reason": WRONG_LOGIN}, client=client)
            raise Unauthenticated(f"{WRONG_LOGIN}: try again", param="password")
        assert stored is not None
        user = store.get_user(name)
        with store.transaction():
            if hasher().check_needs_rehash(stored):
                store.set_password_hash(name, hasher().hash(password), _iso(moment))
            store.clear_login_failures(subjects[0])
            store.audit(user.name, "login", user.name, {}, client=client)
        return user

    def _throttle(self, name: str, subjects: list[str], moment: datetime, client: str | None) -> None:
        since = _iso(moment - THROTTLE_WINDOW)
        for subject, limit in zip(subjects, (MAX_USER_FAILURES, MAX_CLIENT_FAILURES), strict=False):
            count, first = self.context.store.login_failures(subject, since)
            if count < limit or first is None:
                continue
            until = datetime.fromisoformat(first) + THROTTLE_WINDOW
            wait = max(1, int((until - moment).total_seconds()) + 1)
            what = f"user {name!r}" if subject.startswith("user:") else "this address"
            store = self.context.store
            try:
                with store.transaction():
                    store.audit(_printable(name), "denied", "login", {"reason": "throttled"}, client=client)
            except WorkspaceError:
                pass  # the refusal is what matters
            raise TooManyAttempts(
                f"too many failed sign-ins for {what}: try again after {_iso(until)} (in {wait} seconds)",
                retry_after=wait,
            )

    # -- web sessions ---------------------------------------------------------------------------
    def start_session(self, user: str, *, client: str | None, ttl_seconds: int = 12 * 3600) -> str:
        """Open a web session for ``user`` (signed in); return its random id, for the session cookie."""
        store = self.context.store
        name = store.get_user(user).name
        session_id = secrets.token_urlsafe(32)
        moment = self._now()
        with store.transaction():
            store.remove_expired_sessions(_iso(moment))
            store.add_session(digest(session_id), name, _iso(moment), _iso(moment + timedelta(seconds=ttl_seconds)),
                              client)
        return session_id

    def session_user(self, session_id: str) -> User | None:
        """Return the user of a web session (None: unknown, ended, expired, or the user was removed)."""
        store = self.context.store
        key = digest(session_id)
        session = store.get_session(key)
        moment = self._now()
        if session is None or session.expires_at <= _iso(moment):
            return None
        try:
            user = store.get_user(session.user)
        except NotFound:
            return None
        if datetime.fromisoformat(session.last_seen_at) + TOUCH_EVERY <= moment:
            with store.transaction():
                store.touch_session(key, _iso(moment))
        return user

    def end_session(self, session_id: str) -> None:
        """End a web session (log out); an unknown one is already ended."""
        store = self.context.store
        key = digest(session_id)
        session = store.get_session(key)
        if session is None:
            return
        with store.transaction():
            if store.remove_session(key):
                store.audit(session.user, "logout", session.user, {})

    # -- API tokens -----------------------------------------------------------------------------
    def create_token(self, name: str, *, expires_in_seconds: int | None = None) -> tuple[ApiToken, str]:
        """Create an API token for the acting user; return it and its secret (shown once, stored hashed)."""
        actor = self.context.authorize("tokens.create", own=True)
        name = check_name("token", name)
        if expires_in_seconds is not None and expires_in_seconds <= 0:
            raise ConfigError(
                f"invalid token lifetime {expires_in_seconds}s: use a positive duration", param="expires_in_seconds"
            )
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        moment = self._now()
        expires = _iso(moment + timedelta(seconds=expires_in_seconds)) if expires_in_seconds is not None else None
        store = self.context.store
        with store.transaction():
            token = store.add_token(actor.name, name, digest(secret), _iso(moment), expires)
            store.audit(actor.name, "tokens.create", name, {"expires_at": expires})
        return token, secret

    def list_tokens(self, *, every_user: bool = False) -> list[ApiToken]:
        """Return the acting user's API tokens (``every_user``: everyone's, admins only)."""
        actor = self.context.authorize("tokens.list", own=not every_user)
        return self.context.store.list_tokens(None if every_user else actor.name)

    def revoke_token(
        self, name: str, *, user: str | None = None, confirm: Callable[[ApiToken], None] | None = None
    ) -> ApiToken:
        """Revoke one of the acting user's API tokens (admins: ``user``'s); return it.

        ``confirm`` is called with the token once the revocation is allowed; raising cancels it.
        """
        actor = self.context.identify("tokens.revoke")
        store = self.context.store
        owner = store.get_user(user).name if user is not None else actor.name
        self.context.authorize("tokens.revoke", own=owner == actor.name)
        token = store.get_token(owner, name)
        if token is None:
            raise NotFound(f"user {owner!r} has no API token named {name!r} (see the token list)", kind="token",
                           name=name)
        if confirm is not None:
            confirm(token)
        with store.transaction():
            store.remove_token(owner, name)
            store.audit(actor.name, "tokens.revoke", name, {"user": owner})
        return token

    def authenticate_token(self, token: str) -> User:
        """Return the user an API token belongs to; raise :class:`Unauthenticated` when it is not valid."""
        store = self.context.store
        key = digest(token)
        found = store.token_by_digest(key) if token.startswith(TOKEN_PREFIX) else None
        moment = self._now()
        if found is None or (found.expires_at is not None and found.expires_at <= _iso(moment)):
            raise Unauthenticated("the API token is unknown, expired or revoked: create a new one")
        try:
            user = store.get_user(found.user)
        except NotFound:
            raise Unauthenticated("the API token is unknown, expired or revoked: create a new one") from None
        if found.last_used_at is None or datetime.fromisoformat(found.last_used_at) + TOUCH_EVERY <= moment:
            with store.transaction():
                store.touch_token(key, _iso(moment))
        return user
