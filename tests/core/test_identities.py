"""Real identities (issue 17): passwords, invites, sign-in and its throttling, web sessions, API tokens.

Every test runs against both stores. Users: ada (admin), carl (contributor), vera (viewer).
"""

from __future__ import annotations

import re
import sqlite3
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest
from argon2 import PasswordHasher
from sqlalchemy import func, select

from segport import AlreadyExists, ConfigError, NotFound, PermissionDenied, Workspace, WorkspaceError
from segport.errors import ExitStatus, TooManyAttempts, Unauthenticated
from segport.services import identities as identities_module
from segport.store.schema import api_tokens, audit, invites, login_failures, users, web_sessions
from segport.testing import dump_database

PASSWORD = "correct horse battery"
OTHER = "another long password"
T0 = datetime(2026, 1, 5, 9, 0, 0, tzinfo=timezone.utc)


class Clock:
    """A clock the tests move."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def as_user(act_as: Any, clock: Clock) -> Any:
    """``as_user('carl')``: the workspace acting as carl, on the test's clock."""

    def open_as(name: str | None) -> Workspace:
        other: Workspace = act_as(name)
        other.identities.clock = clock
        return other

    return open_as


@pytest.fixture
def admin(ws: Workspace, clock: Clock) -> Workspace:
    ws.identities.clock = clock
    return ws


@pytest.fixture
def cheap_hasher(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Argon2id with small parameters, for the tests that verify many passwords (throttling)."""
    monkeypatch.setattr(identities_module, "_hasher", PasswordHasher(time_cost=1, memory_cost=256, parallelism=1))
    monkeypatch.setattr(identities_module, "_dummy_hash", None)
    yield
    identities_module._dummy_hash = None


def rows(ws: Workspace, statement: Any) -> list[Any]:
    return list(ws.store.db.execute(statement).fetchall())  # type: ignore[attr-defined]


def count(ws: Workspace, table: Any) -> int:
    return int(ws.store.db.execute(select(func.count()).select_from(table)).scalar())  # type: ignore[attr-defined]


def last_audit(ws: Workspace) -> Any:
    return ws.store.audit_entries(1)[0]


# -- passwords ------------------------------------------------------------------------------------
def test_password_is_an_argon2id_hash_and_never_stored_plain(admin: Workspace, home: Path) -> None:
    admin.set_password("ada", PASSWORD)
    (stored,) = rows(admin, select(users.c.password_hash, users.c.password_changed_at).where(users.c.name == "ada"))
    assert stored[0].startswith("$argon2id$") and stored[1] == T0.isoformat()
    assert PASSWORD not in dump_database(home)
    if (home / "segport.db").exists():  # the SQLite file and its write-ahead log hold no plaintext either
        for path in home.glob("segport.db*"):
            assert PASSWORD.encode() not in path.read_bytes()
    entry = last_audit(admin)
    assert (entry.user, entry.action, entry.target, entry.detail) == ("ada", "users.passwd", "ada", {})


def test_weak_passwords_are_refused(admin: Workspace) -> None:
    with pytest.raises(ConfigError, match="at least 10 characters") as info:
        admin.set_password("ada", "short")
    assert info.value.param == "password"
    admin.add_user("longusername", "viewer")
    with pytest.raises(ConfigError, match="is the user name") as info:
        admin.set_password("longusername", "longusername")
    assert info.value.param == "password"


def test_everyone_sets_their_own_password_only_admins_others(admin: Workspace, as_user: Any) -> None:
    for name in ("carl", "vera"):
        as_user(name).set_password(name, PASSWORD)
    with pytest.raises(PermissionDenied, match="only admins manage other users' passwords"):
        as_user("vera").set_password("carl", OTHER)
    denied = last_audit(admin)
    assert (denied.user, denied.action, denied.target) == ("vera", "denied", "users.passwd")
    admin.set_password("vera", OTHER)
    assert admin.identities.login("vera", OTHER, client=None).name == "vera"


# -- sign-in --------------------------------------------------------------------------------------
def test_login_checks_the_password_and_audits_with_the_client(admin: Workspace) -> None:
    admin.set_password("carl", PASSWORD)
    user = admin.identities.login("carl", PASSWORD, client="203.0.113.7")
    assert user.name == "carl"
    entry = last_audit(admin)
    assert (entry.user, entry.action, entry.target, entry.client) == ("carl", "login", "carl", "203.0.113.7")


def test_every_failed_login_gets_the_same_answer_and_costs_a_verify(
    admin: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin.set_password("carl", PASSWORD)
    verified: list[str] = []

    class Spy(PasswordHasher):
        def verify(self, hash: str | bytes, password: str | bytes) -> bool:
            verified.append(str(hash))
            return super().verify(hash, password)

    monkeypatch.setattr(identities_module, "_hasher", Spy())
    messages = []
    for name, password in (("carl", OTHER), ("nobody", PASSWORD), ("vera", PASSWORD)):  # vera has no password
        with pytest.raises(Unauthenticated) as info:
            admin.identities.login(name, password, client="198.51.100.1")
        assert info.value.exit_status is ExitStatus.PERMISSION_DENIED
        assert not isinstance(info.value, PermissionDenied)  # 401 on the web, not 403
        messages.append(str(info.value))
    assert len(set(messages)) == 1 and messages[0].startswith("wrong username or password")
    assert len(verified) == 3 and all(h.startswith("$argon2id$") for h in verified)
    denied = admin.store.audit_entries(3)
    assert [(e.user, e.action, e.target, e.client) for e in denied] == [
        (n, "denied", "login", "198.51.100.1") for n in ("vera", "nobody", "carl")
    ]
    assert all(PASSWORD not in str(e.to_dict()) and OTHER not in str(e.to_dict()) for e in denied)


def test_failed_logins_for_a_user_are_throttled(admin: Workspace, clock: Clock, cheap_hasher: None) -> None:
    admin.set_password("carl", PASSWORD)
    for _ in range(5):
        with pytest.raises(Unauthenticated):
            admin.identities.login("carl", OTHER, client=None)
        clock.advance(seconds=10)
    with pytest.raises(TooManyAttempts) as info:  # even the right password waits
        admin.identities.login("carl", PASSWORD, client=None)
    assert isinstance(info.value, PermissionDenied)
    first_failure_leaves = T0 + timedelta(minutes=15)
    assert first_failure_leaves.isoformat() in str(info.value)
    assert info.value.retry_after == int((first_failure_leaves - clock.now).total_seconds()) + 1
    assert (last_audit(admin).action, last_audit(admin).detail) == ("denied", {"reason": "throttled"})
    clock.advance(minutes=15)
    assert admin.identities.login("carl", PASSWORD, client=None).name == "carl"


def test_failed_logins_from_a_client_are_throttled_across_names_and_restarts(
    admin: Workspace, as_user: Any, clock: Clock, cheap_hasher: None
) -> None:
    admin.set_password("carl", PASSWORD)
    for i in range(20):
        with pytest.raises(Unauthenticated):
            admin.identities.login(f"guess{i % 4}", OTHER, client="192.0.2.9")
    reopened = as_user(None)  # another process: the failures are in the database
    with pytest.raises(TooManyAttempts, match="too many failed sign-ins for this address"):
        reopened.identities.login("carl", PASSWORD, client="192.0.2.9")
    assert reopened.identities.login("carl", PASSWORD, client="192.0.2.10").name == "carl"


def test_a_success_forgets_the_users_failures(admin: Workspace, cheap_hasher: None) -> None:
    admin.set_password("carl", PASSWORD)
    for _ in range(4):
        with pytest.raises(Unauthenticated):
            admin.identities.login("carl", OTHER, client=None)
    admin.identities.login("carl", PASSWORD, client=None)
    for _ in range(5):
        with pytest.raises(Unauthenticated):
            admin.identities.login("carl", OTHER, client=None)
    with pytest.raises(TooManyAttempts):
        admin.identities.login("carl", OTHER, client=None)


def test_old_failures_are_pruned(admin: Workspace, clock: Clock, cheap_hasher: None) -> None:
    with pytest.raises(Unauthenticated):
        admin.identities.login("nobody", OTHER, client="192.0.2.1")
    clock.advance(minutes=16)
    with pytest.raises(Unauthenticated):
        admin.identities.login("nobody", OTHER, client=None)
    assert rows(admin, select(login_failures.c.subject)) == [("user:nobody",)]


def test_login_rehashes_when_the_parameters_changed(admin: Workspace) -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=256, parallelism=1).hash(PASSWORD)
    with admin.store.transaction():
        admin.store.set_password_hash("carl", weak, T0.isoformat())
    admin.identities.login("carl", PASSWORD, client=None)
    stored = admin.store.password_hash("carl")
    assert stored != weak and stored is not None and not identities_module.hasher().check_needs_rehash(stored)
    assert admin.identities.login("carl", PASSWORD, client=None).name == "carl"


# -- invites --------------------------------------------------------------------------------------
def test_an_invite_sets_the_password_once(admin: Workspace, as_user: Any) -> None:
    token = admin.invite_user("carl")
    assert len(token) >= 43 and token not in dump_database(admin.home)
    entry = last_audit(admin)
    assert (entry.user, entry.action, entry.target) == ("ada", "users.invite", "carl")
    nobody = as_user(None)  # accepting needs no acting user
    assert nobody.identities.accept_invite(token, PASSWORD).name == "carl"
    entry = last_audit(admin)
    assert (entry.user, entry.action, entry.target) == ("carl", "users.passwd", "carl")
    assert nobody.identities.login("carl", PASSWORD, client=None).name == "carl"
    with pytest.raises(PermissionDenied, match="used already: ask an admin for a new one"):
        nobody.identities.accept_invite(token, OTHER)
    assert nobody.identities.login("carl", PASSWORD, client=None).name == "carl"


def test_invites_expire_and_a_new_one_voids_the_old(admin: Workspace, clock: Clock) -> None:
    old = admin.invite_user("carl")
    new = admin.invite_user("carl", ttl_seconds=3600)
    with pytest.raises(PermissionDenied, match="unknown or expired: ask an admin for a new one"):
        admin.identities.accept_invite(old, PASSWORD)
    clock.advance(seconds=3600)
    with pytest.raises(PermissionDenied, match="unknown or expired"):
        admin.identities.accept_invite(new, PASSWORD)
    with pytest.raises(PermissionDenied, match="unknown or expired"):
        admin.identities.accept_invite("made-up", PASSWORD)
    assert admin.store.password_hash("carl") is None


def test_an_invite_still_refuses_a_weak_password(admin: Workspace) -> None:
    token = admin.invite_user("carl")
    with pytest.raises(ConfigError, match="too short"):
        admin.identities.accept_invite(token, "short")
    assert admin.identities.accept_invite(token, PASSWORD).name == "carl"  # still usable


def test_only_admins_invite_and_only_existing_users(admin: Workspace, as_user: Any) -> None:
    with pytest.raises(PermissionDenied):
        as_user("carl").invite_user("vera")
    with pytest.raises(NotFound):
        admin.invite_user("nobody")
    with pytest.raises(ConfigError, match="positive"):
        admin.invite_user("carl", ttl_seconds=0)


# -- web sessions ---------------------------------------------------------------------------------
def test_sessions_start_expire_and_end(admin: Workspace, clock: Clock) -> None:
    ids = admin.identities
    session = ids.start_session("carl", client="203.0.113.7", ttl_seconds=3600)
    assert session not in dump_database(admin.home)
    user = ids.session_user(session)
    assert user is not None and user.name == "carl"
    assert ids.session_user("forged") is None
    clock.advance(seconds=3599)
    assert ids.session_user(session) is not None
    clock.advance(seconds=1)
    assert ids.session_user(session) is None
    other = ids.start_session("carl", client=None)
    assert count(admin, web_sessions) == 1  # the expired one was cleared
    ids.end_session(other)
    assert ids.session_user(other) is None
    entry = last_audit(admin)
    assert (entry.user, entry.action) == ("carl", "logout")
    ids.end_session(other)  # twice: nothing more


def test_last_seen_is_written_at_most_once_a_minute(admin: Workspace, clock: Clock) -> None:
    session = admin.identities.start_session("carl", client=None)
    seen = select(web_sessions.c.last_seen_at)
    clock.advance(seconds=59)
    admin.identities.session_user(session)
    assert rows(admin, seen) == [(T0.isoformat(),)]
    clock.advance(seconds=1)
    admin.identities.session_user(session)
    assert rows(admin, seen) == [(clock.now.isoformat(),)]


def test_a_password_change_ends_the_users_sessions(admin: Workspace, as_user: Any) -> None:
    carls = admin.identities.start_session("carl", client=None)
    adas = admin.identities.start_session("ada", client=None)
    as_user("carl").set_password("carl", PASSWORD)
    assert admin.identities.session_user(carls) is None
    assert admin.identities.session_user(adas) is not None


# -- API tokens -----------------------------------------------------------------------------------
def test_tokens_are_created_shown_once_and_authenticate(admin: Workspace, as_user: Any, home: Path) -> None:
    carl = as_user("carl")
    token, secret = carl.create_token("ci")
    assert re.fullmatch(r"segport_[A-Za-z0-9_-]{43}", secret)
    assert token.to_dict() == {"name": "ci", "user": "carl", "created_at": T0.isoformat(), "expires_at": None,
                               "last_used_at": None}
    assert secret not in dump_database(home) and secret[8:] not in dump_database(home)
    assert carl.identities.authenticate_token(secret).name == "carl"
    (used,) = carl.list_tokens()
    assert used.last_used_at == T0.isoformat()
    entry = last_audit(admin)
    assert (entry.user, entry.action, entry.target) == ("carl", "tokens.create", "ci")
    with pytest.raises(AlreadyExists):
        carl.create_token("ci")


def test_viewers_manage_their_own_tokens_admins_everyones(admin: Workspace, as_user: Any) -> None:
    vera = as_user("vera")
    vera.create_token("mine")
    admin.create_token("mine")
    assert [t.user for t in vera.list_tokens()] == ["vera"]
    with pytest.raises(PermissionDenied):
        vera.list_tokens(every_user=True)
    assert [t.user for t in admin.list_tokens(every_user=True)] == ["ada", "vera"]
    with pytest.raises(PermissionDenied):
        vera.revoke_token("mine", user="ada")
    assert admin.revoke_token("mine", user="vera").user == "vera"
    assert [t.user for t in admin.list_tokens(every_user=True)] == ["ada"]
    with pytest.raises(NotFound, match="no API token named 'mine'"):
        vera.revoke_token("mine")


def test_revoked_expired_and_made_up_tokens_are_refused(admin: Workspace, clock: Clock) -> None:
    _, revoked = admin.create_token("gone")
    admin.revoke_token("gone")
    _, short = admin.create_token("short", expires_in_seconds=60)
    assert admin.identities.authenticate_token(short).name == "ada"
    clock.advance(seconds=60)
    for secret in (revoked, short, "segport_" + "A" * 43, "", "Bearer nonsense"):
        with pytest.raises(Unauthenticated, match="unknown, expired or revoked") as info:
            admin.identities.authenticate_token(secret)
        assert info.value.exit_status is ExitStatus.PERMISSION_DENIED


def test_token_last_used_is_written_at_most_once_a_minute(admin: Workspace, clock: Clock) -> None:
    _, secret = admin.create_token("ci")
    admin.identities.authenticate_token(secret)
    clock.advance(seconds=30)
    admin.identities.authenticate_token(secret)
    assert admin.list_tokens()[0].last_used_at == T0.isoformat()
    clock.advance(seconds=30)
    admin.identities.authenticate_token(secret)
    assert admin.list_tokens()[0].last_used_at == clock.now.isoformat()


# -- a removed user -------------------------------------------------------------------------------
def test_removing_a_user_removes_their_credentials(admin: Workspace, as_user: Any) -> None:
    carl = as_user("carl")
    _, secret = carl.create_token("ci")
    session = admin.identities.start_session("carl", client=None)
    admin.invite_user("carl")
    admin.create_token("keep")
    admin.remove_user("carl")
    with pytest.raises(Unauthenticated):
        admin.identities.authenticate_token(secret)
    assert admin.identities.session_user(session) is None
    assert (count(admin, api_tokens), count(admin, web_sessions), count(admin, invites)) == (1, 0, 0)


def test_sqlite_foreign_keys_cascade_too(admin: Workspace, as_user: Any, database_url: str | None) -> None:
    """The store deletes credentials itself; the foreign keys would too (SQLite's are on)."""
    if database_url is not None:
        pytest.skip("the SQLite file only")
    as_user("carl").create_token("ci")
    admin.identities.start_session("carl", client=None)
    admin.store.close()
    db = sqlite3.connect(admin.home / "segport.db")
    db.execute("PRAGMA foreign_keys=ON")
    db.execute("DELETE FROM users WHERE name = 'carl'")
    db.commit()
    assert db.execute("SELECT count(*) FROM api_tokens").fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM web_sessions").fetchone() == (0,)
    db.close()


# -- the audit's client address -------------------------------------------------------------------
def test_the_audit_records_the_client_address(admin: Workspace) -> None:
    admin.add_user("cli-user", "viewer")
    assert last_audit(admin).client is None
    admin.store.audit_client = "2001:db8::1"
    admin.add_user("web-user", "viewer")
    entry = last_audit(admin)
    assert entry.client == "2001:db8::1" and entry.to_dict()["client"] == "2001:db8::1"
    assert rows(admin, select(audit.c.client).order_by(audit.c.id.desc()).limit(1)) == [("2001:db8::1",)]


def test_without_the_web_extra_a_password_names_the_install_step(
    admin: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(identities_module, "_hasher", None)
    monkeypatch.setitem(sys.modules, "argon2", None)  # import argon2 fails, as without argon2-cffi
    with pytest.raises(WorkspaceError, match=r"needs the Python module 'argon2', which is not installed: "
                                             r"pip install 'segport\[web\]'"):
        admin.set_password("ada", PASSWORD)
    assert admin.store.password_hash("ada") is None
